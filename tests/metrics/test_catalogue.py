"""The metric catalogue against brute-force references: rank metrics, score, bounds, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plismbench.metrics import catalogue as cat


def _ranks(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 40, size=(5, 17)), rng.integers(1, 40, size=(5, 17))


def test_rank_metrics_match_a_loop_over_pairs() -> None:
    r_ab, r_ba = _ranks()
    for p in range(len(r_ab)):
        ab, ba = r_ab[p].tolist(), r_ba[p].tolist()
        mrr = (sum(1 / r for r in ab) / len(ab) + sum(1 / r for r in ba) / len(ba)) / 2
        pooled = sorted(ab + ba)
        med = (pooled[len(pooled) // 2 - 1] + pooled[len(pooled) // 2]) / 2
        top3 = (sum(r <= 3 for r in ab) / len(ab) + sum(r <= 3 for r in ba) / len(ba)) / 2
        assert cat.mean_reciprocal_rank(r_ab, r_ba)[p] == pytest.approx(mrr)
        assert cat.median_rank(r_ab, r_ba)[p] == med
        from_ranks = cat.top_k(3).from_ranks
        assert from_ranks is not None and from_ranks(r_ab, r_ba)[p] == pytest.approx(top3)


def test_perfect_model_and_floor() -> None:
    ones = np.ones((2, 9), dtype=np.int64)
    assert cat.mean_reciprocal_rank(ones, ones).tolist() == [1.0, 1.0]
    assert cat.median_rank(ones, ones).tolist() == [1.0, 1.0]
    # unrelated features: ranks uniform on 1..n, MRR ~ H_n / n, far below 1
    n = 1000
    r = np.arange(1, n + 1)[None, :]
    harmonic = sum(1 / i for i in range(1, n + 1))
    assert cat.mean_reciprocal_rank(r, r)[0] == pytest.approx(harmonic / n)


def test_metric_names_order_and_presence() -> None:
    assert cat.metric_names([1, 10]) == [
        "cosine_similarity", "top_1_accuracy", "top_10_accuracy", "mrr", "median_rank",
    ]  # fmt: skip
    cols = ["slide_a", "median_rank", "top_10_accuracy", "top_3_accuracy", "cosine_similarity"]
    assert cat.present_metrics(cols) == [
        "cosine_similarity", "top_3_accuracy", "top_10_accuracy", "median_rank",
    ]  # fmt: skip


def test_score_is_the_mean_and_nan_stays_nan() -> None:
    assert cat.score([0.5, 0.25, 0.75, 1.0]) == pytest.approx(0.625)
    assert math.isnan(cat.score([0.5, float("nan"), 0.75, 1.0]))
    reps = cat.score([np.zeros(3), np.ones(3), np.ones(3), np.ones(3)])
    assert reps.tolist() == [0.75, 0.75, 0.75]


def test_components_and_labels() -> None:
    assert cat.COMPONENT_LABELS == (
        "cosine_similarity_all", "top_10_cross_scanner", "top_10_cross_staining",
        "top_10_cross_scanner_cross_staining",
    )  # fmt: skip
    assert cat.label("top_5_accuracy") == "Top-5" and cat.label("mrr") == "MRR"
    assert cat.title("top_5_accuracy") == "Top-5 accuracy"
    assert cat.title("some_column") == "Some column"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cosine_similarity", (-1.0, 1.0)),
        ("cosine_similarity_all", (-1.0, 1.0)),
        ("top_10_accuracy", (0.0, 1.0)),
        ("top_10_cross_scanner", (0.0, 1.0)),
        ("top_10_cross_mean", (0.0, 1.0)),
        ("mrr", (0.0, 1.0)),
        ("median_rank", (1.0, math.inf)),
        ("leaderboard_metric", (-0.25, 1.0)),
        ("n_tiles", (-math.inf, math.inf)),
    ],
)
def test_bounds(name: str, expected: tuple[float, float]) -> None:
    assert cat.bounds(name) == expected
