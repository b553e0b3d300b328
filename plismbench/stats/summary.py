"""Confidence intervals of the aggregates: medians per pair type, the leaderboard score.

IQRs get no interval: on 13 stainings x 7 scanners no bootstrap interval of an IQR
reaches 0.90 coverage (docs/statistics.md, "Why no IQR intervals").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from plismbench.metrics.aggregate import pair_type_order
from plismbench.metrics.catalogue import SCORE, dataset_components, lookup, score
from plismbench.stats.bootstrap import LEVEL, N_BOOT, SEED, Bootstrap
from plismbench.stats.bounds import metric_bounds
from plismbench.stats.tail import worst_mean_of
from plismbench.store.design import design_from_metrics

#: Columns added beside an aggregate.
CI_COLUMNS = ("median_ci_low", "median_ci_high")
#: The mean of the worst 10% of pairs (`plismbench.stats.tail`) and its interval.
TAIL_COLUMNS = ("worst10_mean", "worst10_ci_low", "worst10_ci_high")
#: The metrics whose tail is reported (issue: cosine and top-10); the others' tail columns
#: are empty, which keeps evaluate's interval stage cheap.
TAIL_METRICS = ("cosine_similarity", "top_10_accuracy")


def median_of(values: np.ndarray) -> float:
    """The median, NaN when a value is undefined (NaN or infinite) or there is none.

    The package's one NaN policy: undefined stays undefined, and prints ``n/a``.
    """
    if values.size == 0 or not np.isfinite(values).all():
        return float("nan")
    return float(np.median(values))


def results_ci(
    metrics: pl.DataFrame,
    names: Sequence[str],
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    naive: bool = False,
) -> pl.DataFrame:
    """One row per (pair_type, metric): the median and the worst-10% mean, with their
    bootstrap intervals.

    Columns: ``pair_type, metric, median, median_ci_low, median_ci_high`` and
    `TAIL_COLUMNS` (the mean of the worst 10% of pairs by the metric's direction). A
    NaN among the pairs makes the median, the worst-10% mean and their intervals NaN.
    ``naive=True`` resamples slide pairs instead of stainings and scanners (for
    comparison only: too narrow).
    """
    boot = Bootstrap(design_from_metrics(metrics), n_boot, seed, naive=naive)
    values = {name: metrics[name].to_numpy().astype(np.float64) for name in names}
    # Every pair type of a metric from one gather and cumulative sum of the weights.
    replicates = {name: boot.quantiles_by_type(v, [0.5]) for name, v in values.items()}
    better = {name: _higher_is_better(name) for name in names}
    tails = {name: boot.worst_by_type(v, better[name])
             for name, v in values.items() if name in TAIL_METRICS}  # fmt: skip
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        mask = boot.design.mask(ptype)
        for name in names:
            sub = values[name][mask]
            med = median_of(sub)
            lo, hi = boot.ci(med, replicates[name][ptype][:, 0], level, metric_bounds(name))
            worst = w_lo = w_hi = None
            if name in tails:
                worst = worst_mean_of(sub, better[name])
                w_lo, w_hi = boot.ci(
                    worst, tails[name][ptype], level, metric_bounds(name), debias=True
                )
            rows.append({"pair_type": ptype, "metric": name, "median": med,
                         "median_ci_low": lo, "median_ci_high": hi, "worst10_mean": worst,
                         "worst10_ci_low": w_lo, "worst10_ci_high": w_hi})  # fmt: skip
    return pl.DataFrame(rows)


def _higher_is_better(name: str) -> bool:
    metric = lookup(name)
    return metric is None or metric.higher_is_better


def component_replicates(
    metrics: pl.DataFrame, boot: Bootstrap
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The four leaderboard medians and their replicate vectors (NaN when missing)."""
    observed: dict[str, float] = {}
    reps: dict[str, np.ndarray] = {}
    for c in dataset_components(boot.design.units):
        label, ptype, metric = c.label, c.pair_type, c.metric
        if metric not in metrics.columns:
            observed[label], reps[label] = float("nan"), np.full(boot.n_replicates, np.nan)
            continue
        values = metrics[metric].to_numpy().astype(np.float64)
        sub = values[boot.design.mask(ptype)]
        observed[label] = median_of(sub)
        reps[label] = (boot.median(values, ptype) if np.isfinite(observed[label])
                       else np.full(boot.n_replicates, np.nan))  # fmt: skip
    return observed, reps


def score_replicates(metrics: pl.DataFrame, boot: Bootstrap) -> tuple[dict[str, float], np.ndarray]:
    """The four leaderboard medians and their mean, and the replicate vector of the mean.

    A missing pair type or metric gives NaN for its component, the score and the replicates.
    """
    observed, parts = component_replicates(metrics, boot)
    observed[SCORE] = score(list(observed.values()))
    return observed, score(list(parts.values()))


def add_ci_columns(
    results: pl.DataFrame, metrics: pl.DataFrame, names: Sequence[str], **options: object
) -> pl.DataFrame:
    """``results.csv``'s table with `CI_COLUMNS` and `TAIL_COLUMNS` joined on
    (pair_type, metric).

    ``options`` go to `results_ci()` (``n_boot``, ``seed``, ``level``). On the full
    91-slide design the medians take about 0.05 s a metric (``benchmarks/bench_stats.py``)
    and the worst-10% means about 0.1 s a metric more.
    """
    table = results_ci(metrics, names, **options)  # type: ignore[arg-type]
    ci = table.select("pair_type", "metric", *CI_COLUMNS, *TAIL_COLUMNS)
    return results.join(ci, on=["pair_type", "metric"], how="left", maintain_order="left")
