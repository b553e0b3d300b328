"""Aggregation by pair type against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from plismbench.metrics.aggregate import aggregate, leaderboard_components


def _metrics() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_type": ["cross-scanner"] * 4 + ["cross-staining"] * 3
            + ["cross-scanner-cross-staining"] * 2,
            "cosine_similarity": [0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.7, 0.0, 1.0],
            "top_10_accuracy": [1.0, 0.0, 0.5, 0.5, 0.2, 0.2, 0.8, 0.3, 0.1],
        }
    )  # fmt: skip


def _get(res: pl.DataFrame, ptype: str, metric: str) -> dict:
    return res.filter((pl.col("pair_type") == ptype) & (pl.col("metric") == metric)).row(
        0, named=True
    )


def test_cross_scanner_cosine_by_hand() -> None:
    r = _get(aggregate(_metrics(), ["cosine_similarity"]), "cross-scanner", "cosine_similarity")
    # values 0.1 0.2 0.3 0.4: mean .25; population var = (.0225+.0025+.0025+.0225)/4
    assert r["n_pairs"] == 4
    assert r["mean"] == pytest.approx(0.25)
    assert r["std"] == pytest.approx(math.sqrt(0.0125))
    assert r["median"] == pytest.approx(0.25)
    # linear quantiles: q1 at position 0.75 -> 0.175, q3 at 2.25 -> 0.325
    assert r["q1"] == pytest.approx(0.175) and r["q3"] == pytest.approx(0.325)
    assert r["iqr"] == pytest.approx(0.15)


def test_all_covers_every_pair_and_order() -> None:
    res = aggregate(_metrics(), ["cosine_similarity", "top_10_accuracy"])
    assert res["pair_type"].unique(maintain_order=True).to_list() == [
        "cross-scanner", "cross-staining", "cross-scanner-cross-staining", "all",
    ]  # fmt: skip
    r = _get(res, "all", "cosine_similarity")
    assert r["n_pairs"] == 9
    assert r["median"] == pytest.approx(0.4)  # sorted: 0 .1 .2 .3 .4 .5 .7 .9 1
    r = _get(res, "cross-staining", "top_10_accuracy")
    assert r["median"] == pytest.approx(0.2) and r["mean"] == pytest.approx(0.4)


def test_leaderboard_components_by_hand() -> None:
    res = aggregate(_metrics(), ["cosine_similarity", "top_10_accuracy"])
    c = leaderboard_components(res)
    assert c["cosine_similarity_all"] == pytest.approx(0.4)
    assert c["top_10_cross_scanner"] == pytest.approx(0.5)
    assert c["top_10_cross_staining"] == pytest.approx(0.2)
    assert c["top_10_cross_scanner_cross_staining"] == pytest.approx(0.2)
    assert c["leaderboard_metric"] == pytest.approx((0.4 + 0.5 + 0.2 + 0.2) / 4)


def test_missing_pair_type_gives_nan_metric() -> None:
    m = _metrics().filter(pl.col("pair_type") != "cross-staining")
    c = leaderboard_components(aggregate(m, ["cosine_similarity", "top_10_accuracy"]))
    assert np.isnan(c["top_10_cross_staining"]) and np.isnan(c["leaderboard_metric"])
