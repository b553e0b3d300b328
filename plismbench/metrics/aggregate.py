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

#: Aggregated statistics, in column order.
STATS: tuple[str, ...] = ("n_pairs", "mean", "std", "median", "q1", "q3", "iqr")
#: The pseudo pair type covering every pair.
ALL = "all"
#: The leaderboard's top-k.
LEADERBOARD_K = 10
#: The four components of the reference leaderboard metric: (pair type, metric).
LEADERBOARD_COMPONENTS: tuple[tuple[str, str], ...] = (
    (ALL, "cosine_similarity"),
    ("cross-scanner", f"top_{LEADERBOARD_K}_accuracy"),
    ("cross-staining", f"top_{LEADERBOARD_K}_accuracy"),
    ("cross-scanner-cross-staining", f"top_{LEADERBOARD_K}_accuracy"),
)


def metric_names(top_k: Sequence[int]) -> list[str]:
    """Per-pair metric columns, in report order."""
    return ["cosine_similarity", *(f"top_{k}_accuracy" for k in top_k), "mrr", "median_rank"]


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
    """One row per (pair_type, metric) with :data:`STATS`, ``all`` last."""
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        sub = metrics if ptype == ALL else metrics.filter(pl.col("pair_type") == ptype)
        for name in names:
            rows.append({"pair_type": ptype, "metric": name, **summarise(sub[name].to_numpy())})
    return pl.DataFrame(rows)


def leaderboard_components(
    results: pl.DataFrame, components: Sequence[tuple[str, str]] = LEADERBOARD_COMPONENTS
) -> dict[str, float]:
    """The leaderboard's medians (PLISM: the reference's four) and their mean (NaN if one is
    missing); ``components`` come from the dataset (``DatasetSpec.score_components``)."""
    out: dict[str, float] = {}
    for ptype, metric in components:
        hit = results.filter((pl.col("pair_type") == ptype) & (pl.col("metric") == metric))
        label = f"{metric.removesuffix('_accuracy')}_{ptype}".replace("-", "_")
        out[label] = float(hit["median"][0]) if hit.height else float("nan")
    out["leaderboard_metric"] = float(np.mean(list(out.values())))
    return out
