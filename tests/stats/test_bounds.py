"""Widened intervals stay within the values a metric can take."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic import pairs_frame, synthetic_metrics

from plismbench.stats import results_ci
from plismbench.stats.bounds import difference_bounds, metric_bounds


@pytest.mark.parametrize(("name", "want"), [
    ("cosine_similarity", (-1.0, 1.0)), ("cosine_similarity_all", (-1.0, 1.0)),
    ("top_10_accuracy", (0.0, 1.0)), ("top_10_cross_scanner", (0.0, 1.0)),
    ("top_1_accuracy_a_to_b", (0.0, 1.0)), ("mrr", (0.0, 1.0)),
    ("median_rank", (1.0, math.inf)), ("leaderboard_metric", (-0.25, 1.0)),
    ("something_else", (-math.inf, math.inf)),
])  # fmt: skip
def test_metric_bounds(name: str, want: tuple[float, float]) -> None:
    assert metric_bounds(name) == want


def test_difference_bounds() -> None:
    assert difference_bounds("cosine_similarity") == (-2.0, 2.0)
    assert difference_bounds("mrr") == (-1.0, 1.0)


def test_accuracies_near_one_keep_their_interval_below_one() -> None:
    """Top-10 accuracies of 0.96-1.0 over 4 stainings x 3 scanners: the jackknife widening
    stretched the upper end past 1 before the intervals were kept in range."""
    frame = pairs_frame(4, 3)
    rng = np.random.default_rng(0)
    metrics = synthetic_metrics(frame, rng, 0.5)
    near_one = np.clip(1.0 - np.abs(rng.normal(0, 0.02, metrics.height)), 0.0, 1.0)
    metrics = metrics.with_columns(top_10_accuracy=near_one)
    table = results_ci(metrics, ["top_10_accuracy"], n_boot=200, seed=1)
    assert (table["median_ci_high"] <= 1.0).all()
    assert (table["median_ci_low"] <= table["median"]).all()
    assert (table["median_ci_high"] == 1.0).any()  # the bound was reached, not stayed far from
