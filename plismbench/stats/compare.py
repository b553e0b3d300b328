"""Paired comparisons of models evaluated on the same slide pairs.

For each pair of models, metric and pair type: the difference of medians with its
hierarchical-bootstrap interval, a bootstrap test at the staining/scanner level, and the
Wilcoxon signed-rank test over slide pairs that the H0-mini paper used (it treats the
4,095 pairs as independent, so its p-values are far too small; shown for comparison).
p-values are Holm-corrected across the model comparisons of each (metric, pair type).
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
from plismbench.metrics.aggregate import LEADERBOARD_COMPONENTS, pair_type_order
from plismbench.stats.bootstrap import LEVEL, N_BOOT, SEED, Bootstrap
from plismbench.stats.bounds import difference_bounds
from plismbench.stats.multitest import holm
from plismbench.stats.ranking import Entry, load_entry
from plismbench.stats.summary import score_replicates
from plismbench.store.design import align, design_from_metrics

#: The pseudo metric and pair type of the leaderboard score's row.
SCORE = "leaderboard_metric"
ALPHA = 0.05
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
) -> pl.DataFrame:
    """One row per (model pair, metric, pair type), plus the leaderboard score's rows.

    Columns: ``model_a, model_b, metric, pair_type, n_pairs, median_a, median_b,
    difference, ci_low, ci_high, p_bootstrap, p_bootstrap_holm, p_wilcoxon_pairs,
    p_wilcoxon_pairs_holm, significant`` (``difference = median_a - median_b``;
    ``significant``: Holm-corrected bootstrap p < 0.05).
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

    def median_reps(k: int, name: str, ptype: str, mask: np.ndarray) -> np.ndarray:
        """Replicates of model k's median; computed once per model when nothing is NaN."""
        v = values[k][name]
        if np.array_equal(mask, boot.design.mask(ptype) & np.isfinite(v)):
            key = (k, name, ptype)
            if key not in cache:
                cache[key] = boot.median(v, ptype)
            return cache[key]
        return boot.median(np.where(mask, v, np.nan), ptype)

    for (i, a), (j, b) in itertools.combinations(enumerate(entries), 2):
        for name in names:
            va, vb = values[i][name], values[j][name]
            for ptype in ptypes:
                mask = boot.design.mask(ptype) & np.isfinite(va) & np.isfinite(vb)
                if not mask.any():
                    continue
                med_a, med_b = float(np.median(va[mask])), float(np.median(vb[mask]))
                diff = med_a - med_b
                reps = median_reps(i, name, ptype, mask) - median_reps(j, name, ptype, mask)
                lo, hi = boot.ci(diff, reps, level, difference_bounds(name))
                d = va[mask] - vb[mask]
                p_w = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
                rows.append(
                    _row(a, b, name, ptype, int(mask.sum()), med_a, med_b, diff, lo, hi,
                         boot.p_value(diff, reps), p_w)
                )  # fmt: skip
        (obs_a, reps_a), (obs_b, reps_b) = scores[i], scores[j]
        diff = obs_a[SCORE] - obs_b[SCORE]
        lo, hi = boot.ci(diff, reps_a - reps_b, level, difference_bounds(SCORE))
        rows.append(
            _row(a, b, SCORE, "score", boot.design.n_pairs, obs_a[SCORE], obs_b[SCORE], diff,
                 lo, hi, boot.p_value(diff, reps_a - reps_b), float("nan"))
        )  # fmt: skip
    return _holm(pl.DataFrame(rows))


def _metric_columns(columns: Sequence[str]) -> list[str]:
    wanted = ["cosine_similarity"]
    wanted += sorted(
        (c for c in columns if c.startswith("top_") and c.endswith("_accuracy")),
        key=lambda c: int(c[4:-9]) if c[4:-9].isdigit() else 0,
    )
    wanted += ["mrr", "median_rank"]
    return [c for c in wanted if c in columns and c not in _FIXED]


def _row(
    a: Entry, b: Entry, metric: str, ptype: str, n: int, med_a: float, med_b: float,
    diff: float, lo: float, hi: float, p_boot: float, p_w: float,
) -> dict[str, Any]:  # fmt: skip
    return {
        "model_a": a.name, "model_b": b.name, "metric": metric, "pair_type": ptype,
        "n_pairs": n, "median_a": med_a, "median_b": med_b, "difference": diff,
        "ci_low": lo, "ci_high": hi, "p_bootstrap": p_boot, "p_wilcoxon_pairs": p_w,
    }  # fmt: skip


def _holm(table: pl.DataFrame) -> pl.DataFrame:
    """Holm across the model comparisons of each (metric, pair type)."""
    out = []
    for _, group in table.group_by("metric", "pair_type", maintain_order=True):
        cols = {f"{c}_holm": holm(group[c].to_numpy()) for c in ("p_bootstrap", "p_wilcoxon_pairs")}
        out.append(group.with_columns(**{k: pl.Series(v) for k, v in cols.items()}))
    merged = pl.concat(out)
    merged = merged.with_columns(significant=pl.col("p_bootstrap_holm") < ALPHA)
    order = [
        "model_a", "model_b", "metric", "pair_type", "n_pairs", "median_a", "median_b",
        "difference", "ci_low", "ci_high", "p_bootstrap", "p_bootstrap_holm",
        "p_wilcoxon_pairs", "p_wilcoxon_pairs_holm", "significant",
    ]  # fmt: skip
    return merged.select(order)


def leaderboard_rows(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of the four leaderboard components and the score (the terminal's view)."""
    keep = [(p, m) for p, m in LEADERBOARD_COMPONENTS] + [("score", SCORE)]
    mask = pl.lit(False)
    for ptype, metric in keep:
        mask = mask | ((pl.col("pair_type") == ptype) & (pl.col("metric") == metric))
    return table.filter(mask)


def compare(
    metrics_dir: str | os.PathLike[str],
    models: Sequence[str],
    n_tiles: int | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> pl.DataFrame:
    """Paired comparisons of ``models`` under ``<metrics_dir>/<n>_tiles/`` (see module doc)."""
    _, entries = load_models(metrics_dir, models, n_tiles)
    return compare_entries(entries, n_boot=n_boot, seed=seed)
