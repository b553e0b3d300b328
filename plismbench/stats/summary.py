"""Confidence intervals of the aggregates: medians and IQRs per pair type, leaderboard score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from plismbench.data.datasets import dataset_of_units
from plismbench.metrics.aggregate import pair_type_order
from plismbench.stats.bootstrap import LEVEL, N_BOOT, SEED, Bootstrap
from plismbench.stats.bounds import metric_bounds, spread_bounds
from plismbench.store.design import design_from_metrics

#: Columns added beside an aggregate.
CI_COLUMNS = ("median_ci_low", "median_ci_high", "iqr_ci_low", "iqr_ci_high")


def component_label(pair_type: str, metric: str) -> str:
    """``cosine_similarity_all``, ``top_10_cross_scanner``... (leaderboard column names)."""
    return f"{metric.removesuffix('_accuracy')}_{pair_type}".replace("-", "_")


def results_ci(
    metrics: pl.DataFrame,
    names: Sequence[str],
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    naive: bool = False,
) -> pl.DataFrame:
    """One row per (pair_type, metric): median and IQR with percentile bootstrap intervals.

    Columns: ``pair_type, metric, median, median_ci_low, median_ci_high, iqr, iqr_ci_low,
    iqr_ci_high``. ``naive=True`` resamples slide pairs instead of stainings and scanners
    (for comparison only: its intervals are too narrow).
    """
    boot = Bootstrap(design_from_metrics(metrics), n_boot, seed, naive=naive)
    values = {name: metrics[name].to_numpy().astype(np.float64) for name in names}
    # Every pair type of a metric from one gather and cumulative sum of the weights.
    replicates = {name: boot.quantiles_by_type(v, [0.25, 0.5, 0.75]) for name, v in values.items()}
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        mask = boot.design.mask(ptype)
        for name in names:
            sub = values[name][mask & np.isfinite(values[name])]
            q1, med, q3 = np.quantile(sub, [0.25, 0.5, 0.75]) if sub.size else (np.nan,) * 3
            reps = replicates[name][ptype]
            m_lo, m_hi = boot.ci(float(med), reps[:, 1], level, metric_bounds(name))
            i_lo, i_hi = boot.ci(float(q3 - q1), reps[:, 2] - reps[:, 0], level,
                                 spread_bounds(name))  # fmt: skip
            rows.append(
                {
                    "pair_type": ptype, "metric": name,
                    "median": float(med), "median_ci_low": m_lo, "median_ci_high": m_hi,
                    "iqr": float(q3 - q1), "iqr_ci_low": i_lo, "iqr_ci_high": i_hi,
                }
            )  # fmt: skip
    return pl.DataFrame(rows)


def component_replicates(
    metrics: pl.DataFrame, boot: Bootstrap
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The four leaderboard medians and their replicate vectors (NaN when missing)."""
    observed: dict[str, float] = {}
    reps: dict[str, np.ndarray] = {}
    for ptype, metric in dataset_of_units(boot.design.units).score_components():
        label = component_label(ptype, metric)
        if metric not in metrics.columns:
            observed[label], reps[label] = float("nan"), np.full(boot.n_replicates, np.nan)
            continue
        values = metrics[metric].to_numpy().astype(np.float64)
        sub = values[boot.design.mask(ptype) & np.isfinite(values)]
        observed[label] = float(np.median(sub)) if sub.size else float("nan")
        reps[label] = boot.median(values, ptype)
    return observed, reps


def score_replicates(metrics: pl.DataFrame, boot: Bootstrap) -> tuple[dict[str, float], np.ndarray]:
    """The four leaderboard medians and their mean, and the replicate vector of the mean.

    A missing pair type or metric gives NaN for its component, the score and the replicates.
    """
    observed, parts = component_replicates(metrics, boot)
    observed["leaderboard_metric"] = float(np.mean(list(observed.values())))
    return observed, np.mean(np.stack(list(parts.values())), axis=0)


def add_ci_columns(
    results: pl.DataFrame, metrics: pl.DataFrame, names: Sequence[str], **options: object
) -> pl.DataFrame:
    """``results.csv``'s table with :data:`CI_COLUMNS` joined on (pair_type, metric).

    ``options`` go to :func:`results_ci` (``n_boot``, ``seed``, ``level``). About 0.1 s
    on the full 91-slide design (``benchmarks/bench_stats.py``).
    """
    ci = results_ci(metrics, names, **options).select("pair_type", "metric", *CI_COLUMNS)  # type: ignore[arg-type]
    return results.join(ci, on=["pair_type", "metric"], how="left", maintain_order="left")
