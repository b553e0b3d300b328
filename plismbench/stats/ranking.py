"""Which evaluations may be ranked together, in what order, and which do not differ.

An `Entry` is one finished evaluation (``<metrics-dir>/<n>_tiles/<model>/``). Its
*cohort* is what makes scores comparable: the slide set, the tile subset and the top-k
list. The ranked group is the cohort with the most complete models (then the most
slides); other cohorts are listed after it, each model marked ``separate`` with the
reason. Within a cohort, incomplete models follow the complete ones.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.data.datasets import dataset_of_units
from plismbench.errors import InputError
from plismbench.metrics.aggregate import leaderboard_components
from plismbench.metrics.catalogue import (
    LEADERBOARD_COMPONENTS,
    LEADERBOARD_K,
    SCORE,
    dataset_components,
    score,
)
from plismbench.stats.bootstrap import N_BOOT, SEED, Bootstrap, share_above
from plismbench.stats.bounds import metric_bounds
from plismbench.stats.multitest import holm
from plismbench.stats.summary import component_replicates
from plismbench.store.design import align, design_from_metrics
from plismbench.store.evaluation import (
    METRICS_CSV,
    METRICS_PARQUET,
    RESULTS_CSV,
    RunRecord,
    load_run,
)

NAN = float("nan")


@dataclass
class Entry:
    """One finished evaluation and its place on the leaderboard."""

    name: str
    folder: Path
    run: RunRecord
    metrics: pl.DataFrame | None
    components: dict[str, float]
    slide_ids: frozenset[str]
    reasons: list[str] = field(default_factory=list)
    ci: tuple[float, float] = (NAN, NAN)
    #: 95% intervals of the four components, by leaderboard column name.
    component_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    replicates: np.ndarray | None = None
    boot: Bootstrap | None = None
    group: int | None = None
    #: Competition rank among the ranked models (ties share it); None when not ranked.
    rank: int | None = None
    #: 95% interval of the rank over the paired resamples, and P(beats the next model).
    rank_ci: tuple[float, float] = (NAN, NAN)
    p_beats_next: float = NAN
    status: str = "ranked"
    note: str = ""

    @property
    def n_slides(self) -> int:
        return len(self.slide_ids) or int(self.run.n_slides or 0)

    @property
    def complete(self) -> bool:
        """Every pair type and k=10 present, and a finite score."""
        return not self.reasons

    @property
    def partial(self) -> bool:
        """``run.json`` says ``complete: false``: a PLISM store missing slides."""
        return self.run.partial

    @property
    def score(self) -> float:
        return self.components[SCORE]

    def cohort(self) -> tuple[frozenset[str], str, tuple[int, ...]]:
        subset = json.dumps(self.run.tile_subset, sort_keys=True, default=str)
        return self.slide_ids, subset, self.run.top_k


def load_entry(folder: Path) -> Entry:
    """Read one model folder; `InputError` (one line) for damaged outputs."""
    try:
        run = load_run(folder)
        results = pl.read_csv(folder / RESULTS_CSV)
        dataset = dataset_of_units(run.slide_ids or ())
        components = leaderboard_components(results, dataset_components(run.slide_ids or ()))
        metrics = _read_metrics(folder)
    except (OSError, ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(
            f"{folder}: unreadable evaluation outputs ({type(exc).__name__}: {first}); "
            "re-run evaluate with --overwrite"
        ) from None
    slides: Any = run.slide_ids
    if slides is None and metrics is not None and "slide_a" in metrics.columns:
        slides = metrics["slide_a"].to_list() + metrics["slide_b"].to_list()
    entry = Entry(folder.name, folder, run, metrics, components, frozenset(slides or ()))
    if LEADERBOARD_K not in run.top_k:
        entry.reasons.append(f"evaluated without k={LEADERBOARD_K}")
    present = set(results["pair_type"].to_list()) if "pair_type" in results.columns else set()
    lacking = [t for t in dataset.pair_types() if t not in present]
    if lacking:
        entry.reasons.append(f"no {', '.join(lacking)} pairs")
    if not np.isfinite(entry.score) and not lacking:
        entry.reasons.append("score undefined")
    return entry


def _read_metrics(folder: Path) -> pl.DataFrame | None:
    if (folder / METRICS_PARQUET).is_file():
        return pl.read_parquet(folder / METRICS_PARQUET)
    if (folder / METRICS_CSV).is_file():
        return pl.read_csv(folder / METRICS_CSV)
    return None


def _main_cohort(entries: list[Entry]) -> tuple[Any, ...]:
    cohorts: dict[tuple[Any, ...], list[Entry]] = {}
    for e in entries:
        cohorts.setdefault(e.cohort(), []).append(e)
    return max(
        cohorts,
        key=lambda k: (
            sum(e.complete and not e.partial for e in cohorts[k]),
            sum(e.complete for e in cohorts[k]),
            len(k[0]),
            len(cohorts[k]),
        ),
    )


def _why_separate(e: Entry, main: tuple[Any, ...]) -> str:
    slides, subset, ks = e.cohort()
    why = []
    if slides != main[0]:
        shared = len(slides & main[0])
        why.append(f"other slides ({len(slides)}, {shared} shared with the ranked {len(main[0])})")
    if subset != main[1]:
        why.append("another tile subset")
    if ks != main[2]:
        why.append(f"top-k {list(ks)} instead of {list(main[2])}")
    return "; ".join(why)


def _sort_key(e: Entry) -> tuple[bool, float, str]:
    return (not e.complete, -e.score if np.isfinite(e.score) else np.inf, e.name)


def order_entries(
    entries: list[Entry], *, n_boot: int = N_BOOT, seed: int = SEED, alpha: float = 0.05
) -> list[Entry]:
    """Ranked complete models (best first), ranked incomplete ones, then other cohorts.

    Sets each entry's ``status``, ``note``, ``ci`` and (ranked complete ones) ``group``.
    """
    main = _main_cohort(entries)
    cohorts: dict[tuple[Any, ...], list[Entry]] = {}
    for e in entries:
        cohorts.setdefault(e.cohort(), []).append(e)
    keys = [main, *sorted((k for k in cohorts if k != main), key=lambda k: (-len(k[0]), str(k)))]
    ordered: list[Entry] = []
    for key in keys:
        members = cohorts[key]
        if not all(e.partial for e in members):  # a partial run among full ones: demoted
            for e in members:
                if e.partial:
                    e.reasons.append("run.json says complete: false")
        members = sorted(members, key=_sort_key)
        for e in members:
            if key != main:
                e.status, e.note = "separate", _why_separate(e, main)
                if not e.complete:
                    e.note += "; incomplete: " + "; ".join(e.reasons)
            elif not e.complete:
                e.status, e.note = "incomplete", "; ".join(e.reasons)
            elif e.partial:
                e.note = f"partial PLISM store: {e.n_slides} of 91 slides (--allow-missing)"
        if n_boot > 0:
            _intervals([e for e in members if e.complete], n_boot, seed)
        if key == main:
            _groups([e for e in members if e.complete], alpha)
            _ranks([e for e in members if e.complete])
        ordered += members
    return ordered


def _ranks(ranked: list[Entry]) -> None:
    """Competition ranks (tied scores share one), rank intervals over the paired
    resamples, and the probability that each model beats the next one."""
    scores = np.array([e.score for e in ranked])
    for e in ranked:
        e.rank = 1 + int(np.sum(scores > e.score))
    if not ranked or any(e.replicates is None or e.boot is None for e in ranked):
        return
    boot = ranked[0].boot
    assert boot is not None
    reps = np.stack([boot.boot(e.replicates) for e in ranked])  # type: ignore[arg-type]
    reps = reps[:, np.isfinite(reps).all(axis=0)]
    if reps.shape[1] == 0:
        return
    ranks = 1 + (reps[None, :, :] > reps[:, None, :]).sum(axis=1)  # (n_models, n_boot)
    for i, e in enumerate(ranked):
        lo, hi = np.quantile(ranks[i], [0.025, 0.975])
        e.rank_ci = (float(np.floor(lo)), float(np.ceil(hi)))
        if i + 1 < len(ranked):
            e.p_beats_next = share_above(reps[i] - reps[i + 1])


def _intervals(members: list[Entry], n_boot: int, seed: int) -> None:
    usable = [e for e in members if e.metrics is not None and _has_columns(e.metrics)]
    if not usable:
        return
    reference = usable[0].metrics
    assert reference is not None
    boot = Bootstrap(design_from_metrics(reference, str(usable[0].folder)), n_boot, seed)
    for e in usable:
        assert e.metrics is not None
        try:
            aligned = align(e.metrics, reference, str(e.folder))
        except InputError:
            continue  # same slide set but other pairs: no interval rather than a wrong one
        _, parts = component_replicates(aligned, boot)
        reps = score(list(parts.values()))
        e.replicates, e.boot = reps, boot
        e.ci = boot.ci(e.score, reps, bounds=metric_bounds(SCORE))
        e.component_ci = {
            k: boot.ci(e.components[k], r, bounds=metric_bounds(k)) for k, r in parts.items()
        }


def _has_columns(metrics: pl.DataFrame) -> bool:
    needed = {"slide_a", "slide_b", "pair_type", *(m for _, m in LEADERBOARD_COMPONENTS)}
    return needed <= set(metrics.columns)


def _groups(ranked: list[Entry], alpha: float) -> None:
    """Groups of models not significantly different from their group's first model."""
    if not ranked:
        return
    with_reps = [e for e in ranked if e.replicates is not None]
    p_adj: dict[tuple[str, str], float] = {}
    if len(with_reps) > 1:
        pairs = list(itertools.combinations(with_reps, 2))
        raw = []
        for a, b in pairs:
            assert a.replicates is not None and b.replicates is not None and a.boot is not None
            raw.append(a.boot.p_value(a.score - b.score, a.replicates - b.replicates))
        adjusted = holm(np.nan_to_num(raw, nan=1.0))
        p_adj = {(a.name, b.name): float(p) for (a, b), p in zip(pairs, adjusted, strict=True)}
    if len(ranked) > 1 and len(with_reps) < len(ranked):
        return  # untested pairs (no intervals, n_boot=0): no group, rather than a claimed one
    group, leader = 1, ranked[0]
    for e in ranked:
        if e is not leader and p_adj[(leader.name, e.name)] < alpha:
            group, leader = group + 1, e
        e.group = group
