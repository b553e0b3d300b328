"""No interval in any output excludes its estimate: results (medians and worst-10% means),
leaderboard, breakdown, and compare's worst-10% rows.

(compare: tests/stats/test_compare.py.) Issue 19: a top-3 IQR of 0.275 had the interval
[0.2875, 0.400]; accuracies on a grid of 1/16 (ties) make such discrete bootstraps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from synthetic import pairs_frame, synthetic_metrics, write_evaluation

import plismbench
from plismbench.metrics.catalogue import metric_names
from plismbench.stats import results_ci
from plismbench.stats.breakdown import breakdown


def _tied(seed: int) -> pl.DataFrame:
    m = synthetic_metrics(pairs_frame(5, 4), np.random.default_rng(seed), 0.8, top_k=(1, 3, 10))
    return m.with_columns((pl.col(c) * 16).round() / 16 for c in metric_names((1, 3, 10))[1:4])


def _inside(table: pl.DataFrame, estimate: str, low: str, high: str) -> None:
    ok = table.filter(pl.col(estimate).is_not_nan() & pl.col(low).is_not_null())
    assert ok.height > 0
    bad = ok.filter((pl.col(low) > pl.col(estimate)) | (pl.col(high) < pl.col(estimate)))
    assert bad.height == 0, bad


def test_every_interval_contains_its_estimate(tmp_path: Path) -> None:
    for seed in range(3):
        m = _tied(seed)
        _inside(results_ci(m, metric_names((1, 3, 10)), n_boot=200, seed=seed),
                "median", "median_ci_low", "median_ci_high")  # fmt: skip
        _inside(results_ci(m, metric_names((1, 3, 10)), n_boot=200, seed=seed),
                "worst10_mean", "worst10_ci_low", "worst10_ci_high")  # fmt: skip
        _inside(breakdown(m, n_boot=100, seed=seed), "median", "ci_low", "ci_high")
        write_evaluation(tmp_path / "m" / "20_tiles" / f"model{seed}", m, top_k=(1, 3, 10))
    board = plismbench.leaderboard(tmp_path / "m", write=False, n_boot=200)
    _inside(board, "leaderboard_metric", "leaderboard_metric_ci_low", "leaderboard_metric_ci_high")
    for c in ("cosine_similarity_all", "top_10_cross_scanner", "top_10_cross_staining"):
        _inside(board, c, f"{c}_ci_low", f"{c}_ci_high")
    _inside(board.with_columns(pl.col("rank").cast(pl.Float64)), "rank", "rank_ci_low",
            "rank_ci_high")  # fmt: skip


def test_worst10_differences_in_compare_contain_their_estimate(tmp_path: Path) -> None:
    """The bias-corrected interval is centred off the estimate: it still contains it."""
    for seed in range(2):
        write_evaluation(tmp_path / "m" / "20_tiles" / f"model{seed}", _tied(seed),
                         top_k=(1, 3, 10))  # fmt: skip
    table = plismbench.compare(tmp_path / "m", ["model0", "model1"], n_boot=200)
    worst = table.filter(pl.col("statistic") == "worst10_mean")
    assert worst.height == 6 * 4  # 6 metrics x (3 pair types + all)
    _inside(worst, "difference", "ci_low", "ci_high")
    # one decision: the interval excludes 0 exactly when p < 0.05
    ok = worst.filter(pl.col("difference").is_not_nan())
    excludes = (ok["ci_low"] > 0) | (ok["ci_high"] < 0)
    assert (excludes == (ok["p_bootstrap"] < 0.05)).all()
