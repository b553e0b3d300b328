"""Aggregation of per-pair metrics by pair type, and the reference leaderboard metric.

Conventions (those of owkin/plism-benchmark, so figures compare): ``std`` is the
population standard deviation (ddof=0); quantiles interpolate linearly (NumPy's
default); ``iqr = q3 - q1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from plismbench.data.catalogue import PAIR_TYPES
from plismbench.metrics.catalogue import ALL, COMPONENTS, SCORE, Component, metric_names, score

__all__ = ["ALL", "STATS", "aggregate", "leaderboard_components", "metric_names", "summarise"]

#: Aggregated statistics, in column order.
STATS: tuple[str, ...] = ("n_pairs", "mean", "std", "median", "q1", "q3", "iqr")


def pair_type_order(present: Sequence[str]) -> list[str]:
    """The standard pair types first, then any other present, then ``all``."""
    extra = sorted(set(present) - set(PAIR_TYPES))
    return [t for t in PAIR_TYPES if t in present] + extra + [ALL]


def summarise(values: np.ndarray) -> dict[str, float]:
    """n, mean, std (ddof=0), median, q1, q3, iqr of one metric."""
    v = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return {
        "n_pairs": len(v),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=0)),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
    }


def aggregate(metrics: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """One row per (pair_type, metric) with `STATS`, ``all`` last."""
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        sub = metrics if ptype == ALL else metrics.filter(pl.col("pair_type") == ptype)
        for name in names:
            rows.append({"pair_type": ptype, "metric": name, **summarise(sub[name].to_numpy())})
    return pl.DataFrame(rows)


def leaderboard_components(
    results: pl.DataFrame, components: Sequence[Component] = COMPONENTS
) -> dict[str, float]:
    """The four medians of the reference leaderboard and their mean (NaN if one is missing)."""
    out: dict[str, float] = {}
    for c in components:  # the dataset's (catalogue.dataset_components)
        hit = results.filter((pl.col("pair_type") == c.pair_type) & (pl.col("metric") == c.metric))
        out[c.label] = float(hit["median"][0]) if hit.height else float("nan")
    out[SCORE] = score(list(out.values()))
    return out
