"""Paired comparisons of models evaluated on the same slide pairs.

For each pair of models, metric and pair type: the difference of medians with its
hierarchical-bootstrap interval, a bootstrap test at the staining/scanner level, and the
Wilcoxon signed-rank test over slide pairs that the H0-mini paper used (it treats the
4,095 pairs as independent, so its p-values are far too small; shown for comparison).
The bootstrap p-value inverts the interval (excludes 0 exactly when p < 0.05); p-values
are corrected (Holm or Benjamini-Hochberg) across the model comparisons of each (metric,
pair type). A median over pairs of which one is undefined (NaN) is undefined: its
difference, interval and p-values are NaN (printed ``n/a``), never a median of the rest.
Each (metric, pair type) has a second row, ``statistic = worst10_mean``: the difference
of the means of the worst 10% of pairs (`plismbench.stats.tail`), with its
bias-corrected interval and the test that inverts it; its Wilcoxon p-value is NaN.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.errors import InputError
from plismbench.metrics.aggregate import pair_type_order
from plismbench.metrics.catalogue import LEADERBOARD_COMPONENTS, SCORE, lookup, present_metrics
from plismbench.stats.bootstrap import LEVEL, N_BOOT, SEED, Bootstrap, share_above
from plismbench.stats.bounds import difference_bounds
from plismbench.stats.multitest import adjust
from plismbench.stats.ranking import Entry, load_entry
from plismbench.stats.summary import median_of, score_replicates
from plismbench.stats.tail import worst_mean_of
from plismbench.store.design import align, design_from_metrics

ALPHA = 0.05
#: Values of the ``statistic`` column.
MEDIAN, WORST = "median", "worst10_mean"
_FIXED = ("slide_a", "slide_b", "staining_a", "scanner_a", "staining_b", "scanner_b", "pair_type")


def load_models(
    metrics_dir: str | os.PathLike[str], models: Sequence[str], n_tiles: int | None = None
) -> tuple[int, list[Entry]]:
    """The evaluations of ``models`` at one tile count; they must be comparable."""
    from plismbench.store.evaluation import finished_model_dir, resolve_n_tiles

    root = Path(metrics_dir)
    if not root.is_dir():
        raise InputError(f"{root}: metrics directory not found")
    if len(models) < 2 or len(set(models)) != len(models):
        raise InputError(f"compare: name at least two different models (got {list(models)})")
    n = resolve_n_tiles(root, n_tiles)
    entries = []
    for name in models:
        folder = finished_model_dir(root, n, name)
        entry = load_entry(folder)
        if entry.metrics is None:
            raise InputError(f"{folder}: no metrics.parquet or metrics.csv")
        entries.append(entry)
    first = entries[0]
    for e in entries[1:]:
        slides, subset, _ = e.cohort()
        if slides != first.slide_ids or subset != first.cohort()[1]:
            what = "slides" if slides != first.slide_ids else "tile subsets"
            raise InputError(
                f"compare: {first.name} and {e.name} were evaluated on different {what}; "
                "paired comparisons need the same slide pairs and tiles"
            )
    return n, entries


def compare_entries(
    entries: Sequence[Entry],
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    correction: str = "holm",
) -> pl.DataFrame:
    """One row per (model pair, metric, pair type, statistic), plus the score's rows.

    Columns: `COLUMNS` (``statistic``: ``median`` or ``worst10_mean``, the mean of the
    worst 10% of pairs; ``median_a``, ``median_b``: that statistic of each model;
    ``difference = median_a - median_b``; ``p_a_better``: the
    share of paired resamples in which A is better, by the metric's direction;
    ``*_adj``: corrected by ``correction``, ``holm`` or ``bh``; ``significant``: the
    corrected bootstrap p < 0.05).
    """
    from scipy.stats import wilcoxon

    reference = entries[0].metrics
    assert reference is not None
    frames = [reference] + [
        align(e.metrics, reference, str(e.folder)) for e in entries[1:] if e.metrics is not None
    ]
    common = [c for c in reference.columns if all(c in f.columns for f in frames)]
    names = list(metrics) if metrics else [c for c in _metric_columns(common)]
    boot = Bootstrap(design_from_metrics(reference, str(entries[0].folder)), n_boot, seed)
    ptypes = pair_type_order(reference["pair_type"].unique().to_list())
    rows: list[dict[str, Any]] = []
    scores = [score_replicates(f, boot) for f in frames]
    values = [{n: f[n].to_numpy().astype(np.float64) for n in names} for f in frames]
    cache: dict[tuple[int, str, str], np.ndarray] = {}

    def median_reps(k: int, name: str, ptype: str) -> np.ndarray:
        """Replicates of model k's median over one pair type, computed once."""
        key = (k, name, ptype)
        if key not in cache:
            cache[key] = boot.median(values[k][name], ptype)
        return cache[key]

    tails: dict[tuple[int, str], dict[str, np.ndarray]] = {}

    def tail_reps(k: int, name: str, ptype: str) -> np.ndarray:
        """Replicates of model k's worst-10% mean over one pair type, computed once."""
        if (k, name) not in tails:
            tails[k, name] = boot.worst_by_type(values[k][name], _higher_is_better(name))
        return tails[k, name][ptype]

    for (i, a), (j, b) in itertools.combinations(enumerate(entries), 2):
        for name in names:
            va, vb = values[i][name], values[j][name]
            better = _higher_is_better(name)
            for ptype in ptypes:
                mask = boot.design.mask(ptype)
                if not mask.any():
                    continue
                # undefined stays undefined: a NaN among the pairs makes the median NaN
                med_a, med_b = median_of(va[mask]), median_of(vb[mask])
                diff = med_a - med_b
                if np.isfinite(diff):
                    reps = median_reps(i, name, ptype) - median_reps(j, name, ptype)
                else:
                    reps = np.full(boot.n_replicates, np.nan)
                lo, hi = boot.ci(diff, reps, level, difference_bounds(name))
                d = va[mask] - vb[mask]
                p_w = (float("nan") if not np.isfinite(diff)
                       else float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0)  # fmt: skip
                rows.append(
                    _row(a, b, name, ptype, int(mask.sum()), med_a, med_b, diff, lo, hi,
                         boot.p_value(diff, reps), p_w, _p_better(boot, reps, diff, name))
                )  # fmt: skip
                w_a, w_b = worst_mean_of(va[mask], better), worst_mean_of(vb[mask], better)
                diff = w_a - w_b
                reps = (tail_reps(i, name, ptype) - tail_reps(j, name, ptype)
                        if np.isfinite(diff) else np.full(boot.n_replicates, np.nan))  # fmt: skip
                lo, hi = boot.ci(diff, reps, level, difference_bounds(name), debias=True)
                rows.append(
                    _row(a, b, name, ptype, int(mask.sum()), w_a, w_b, diff, lo, hi,
                         boot.p_value(diff, reps, debias=True), float("nan"),
                         _p_better(boot, reps, diff, name), WORST)
                )  # fmt: skip
        (obs_a, reps_a), (obs_b, reps_b) = scores[i], scores[j]
        diff = obs_a[SCORE] - obs_b[SCORE]
        lo, hi = boot.ci(diff, reps_a - reps_b, level, difference_bounds(SCORE))
        rows.append(
            _row(a, b, SCORE, "score", boot.design.n_pairs, obs_a[SCORE], obs_b[SCORE], diff,
                 lo, hi, boot.p_value(diff, reps_a - reps_b), float("nan"),
                 _p_better(boot, reps_a - reps_b, diff, SCORE))
        )  # fmt: skip
    return _correct(pl.DataFrame(rows), correction)


def _higher_is_better(name: str) -> bool:
    metric = lookup(name)
    return metric is None or metric.higher_is_better


def _p_better(boot: Bootstrap, reps: np.ndarray, diff: float, name: str) -> float:
    """P(A better than B): the share of bootstrap resamples where A's value is better."""
    if not np.isfinite(diff):
        return float("nan")
    metric = lookup(name)
    sign = -1.0 if metric is not None and not metric.higher_is_better else 1.0
    return share_above(sign * boot.boot(reps))


def _metric_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in present_metrics(columns) if c not in _FIXED]


def _row(
    a: Entry, b: Entry, metric: str, ptype: str, n: int, med_a: float, med_b: float,
    diff: float, lo: float, hi: float, p_boot: float, p_w: float, p_better: float,
    statistic: str = MEDIAN,
) -> dict[str, Any]:  # fmt: skip
    return {
        "model_a": a.name, "model_b": b.name, "metric": metric, "pair_type": ptype,
        "statistic": statistic,
        "n_pairs": n, "median_a": med_a, "median_b": med_b, "difference": diff,
        "ci_low": lo, "ci_high": hi, "p_a_better": p_better, "p_bootstrap": p_boot,
        "p_wilcoxon_pairs": p_w,
    }  # fmt: skip


#: Columns of ``compare.csv``, in order.
COLUMNS = (
    "model_a", "model_b", "metric", "pair_type", "statistic", "n_pairs", "median_a", "median_b",
    "difference", "ci_low", "ci_high", "p_a_better", "p_bootstrap", "p_bootstrap_adj",
    "p_wilcoxon_pairs", "p_wilcoxon_pairs_adj", "correction", "significant",
)  # fmt: skip


def _correct(table: pl.DataFrame, correction: str) -> pl.DataFrame:
    """Corrected p-values across the model comparisons of each (metric, pair type,
    statistic).

    ``significant`` is null where the p-value is undefined.
    """
    out = []
    for _, group in table.group_by("metric", "pair_type", "statistic", maintain_order=True):
        cols = {f"{c}_adj": adjust(group[c].to_numpy(), correction)
                for c in ("p_bootstrap", "p_wilcoxon_pairs")}  # fmt: skip
        out.append(group.with_columns(**{k: pl.Series(v) for k, v in cols.items()}))
    merged = pl.concat(out).with_columns(correction=pl.lit(correction))
    p = pl.col("p_bootstrap_adj")
    merged = merged.with_columns(significant=pl.when(p.is_nan()).then(None).otherwise(p < ALPHA))
    return merged.select(COLUMNS)


def leaderboard_rows(table: pl.DataFrame, statistic: str = MEDIAN) -> pl.DataFrame:
    """The rows of the four leaderboard components and the score (the terminal's view);
    ``statistic``: also those of the worst-10% means (`WORST`)."""
    keep = [(p, m) for p, m in LEADERBOARD_COMPONENTS] + [("score", SCORE)]
    mask = pl.lit(False)
    for ptype, metric in keep:
        mask = mask | ((pl.col("pair_type") == ptype) & (pl.col("metric") == metric))
    return table.filter(mask & (pl.col("statistic") == statistic))


def compare(
    metrics_dir: str | os.PathLike[str],
    models: Sequence[str],
    n_tiles: int | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    correction: str = "holm",
) -> pl.DataFrame:
    """Paired comparisons of ``models`` under ``<metrics_dir>/<n>_tiles/`` (see module doc)."""
    _, entries = load_models(metrics_dir, models, n_tiles)
    return compare_entries(entries, n_boot=n_boot, seed=seed, correction=correction)
