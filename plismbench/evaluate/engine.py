"""The evaluate engine: every slide pair's metrics, resumable, in bounded memory.

Stages (each resumable, see :mod:`plismbench.evaluate.cache`):

1. *pairs*: one float32 GEMM per unordered slide pair gives the match similarities and
   the cross counts of both directions;
2. *intra*: once per slide, its own similarities are counted against the thresholds of
   all its partners (row blocks, never a full N x N kept);
3. *assemble*: ranks, top-k, MRR and median rank per pair, aggregated by pair type.

Memory: the normalised features of the tiles used (slides x tiles x d x 4 bytes:
4.5 GB for 91 x 8,139 x 1,536), one N x N similarity block and small tables.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench import __version__
from plismbench.data.catalogue import pair_type
from plismbench.errors import InputError
from plismbench.evaluate import subset as subsets
from plismbench.evaluate.cache import PairCache, cache_key
from plismbench.evaluate.store import FeatureStore
from plismbench.evaluate.tables import results_markdown
from plismbench.metrics.aggregate import aggregate, metric_names
from plismbench.metrics.backend import get_backend
from plismbench.metrics.ranks import cross_counts, ranks_from_counts
from plismbench.metrics.retrieval import DEFAULT_TOP_K, summarise_ranks
from plismbench.utils.io import atomic_path, save_npy, write_json, write_text
from plismbench.utils.progress import make_progress

RUN_FILE = "run.json"
CACHE_DIR = ".cache"
PROVENANCE_FILE = "provenance.json"
RANKS_DIR = "ranks"


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate` produced, and where."""

    model: str
    output_dir: Path
    #: One row per unordered slide pair (``metrics.csv``).
    metrics: pl.DataFrame
    #: One row per (pair_type, metric) (``results.csv``).
    results: pl.DataFrame
    n_tiles: int
    top_k: tuple[int, ...]
    #: Pairs computed in this call; the rest came from the cache.
    pairs_computed: int
    #: True when complete outputs for the same inputs existed and were returned as-is.
    reused: bool

    @property
    def metric_names(self) -> list[str]:
        return metric_names(self.top_k)


def output_dir_for(metrics_dir: str | os.PathLike[str], n_tiles: int, model: str) -> Path:
    """``<metrics-dir>/<n>_tiles/<model>``."""
    return Path(metrics_dir) / f"{n_tiles}_tiles" / model


def validate_top_k(top_k: Sequence[int], n_tiles: int) -> tuple[int, ...]:
    """Sorted unique k values, each in [1, 2n - 1] (the number of candidates)."""
    ks = sorted({int(k) for k in top_k})
    if not ks:
        raise InputError("--top-k: give at least one k")
    bad = [k for k in ks if k < 1 or k > 2 * n_tiles - 1]
    if bad:
        raise InputError(
            f"--top-k {bad}: k must lie in [1, {2 * n_tiles - 1}] "
            f"(the candidates for a query with {n_tiles} tiles per slide)"
        )
    return tuple(ks)


def evaluate(
    model: str,
    features_dir: str | os.PathLike[str],
    metrics_dir: str | os.PathLike[str],
    *,
    n_tiles: int | str | None = None,
    top_k: Sequence[int] = DEFAULT_TOP_K,
    device: str = "auto",
    workers: int | None = None,
    tile_subset: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    save_ranks: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate one model's features: cosine and exact top-k for every slide pair.

    Reads ``features_dir/model/*/features.npy`` and writes ``metrics.csv``,
    ``metrics.parquet``, ``results.csv``, ``results.md`` and ``run.json`` under
    ``metrics_dir/<n>_tiles/model/``. Re-running resumes; complete outputs for the same
    inputs are returned without recomputation unless ``overwrite``.
    """
    started = time.perf_counter()
    store = FeatureStore.open(features_dir, model)
    rows, subset_desc = subsets.resolve(
        store.n_tiles, n_tiles, None if tile_subset is None else Path(tile_subset)
    )
    n = len(rows)
    ks = validate_top_k(top_k, n)
    backend = get_backend(device)
    out = output_dir_for(metrics_dir, n, model)
    key = cache_key(store, rows, backend)
    if not overwrite and (done := _complete(out, model, key, ks, save_ranks)) is not None:
        return done

    threads = workers or os.cpu_count() or 1
    bar = make_progress(progress)
    with backend.threads(workers), bar:
        # Stage 0: read and check every file before writing anything.
        load = bar.add_task(f"{model}: load features", total=len(store.slides))
        feats = []
        for x in store.iter_normalised(rows, threads=min(threads, 4)):
            feats.append(backend.put(x))
            bar.advance(load)
        if (out / RUN_FILE).exists():
            (out / RUN_FILE).unlink()  # the outputs are about to change: not complete
        cache = PairCache(out / CACHE_DIR, key, reset=overwrite)
        n_slides = len(store.slides)
        pairs = list(itertools.combinations(range(n_slides), 2))

        # Stage 1: one GEMM per pair.
        todo = [p for p in pairs if not cache.has_pair(*p)]
        task = bar.add_task(f"{model}: slide pairs", total=len(pairs))
        bar.advance(task, len(pairs) - len(todo))
        for i, j in todo:
            cache.save_pair(i, j, cross_counts(backend, feats[i], feats[j]))
            bar.advance(task)

        # Stage 2: once per slide, its own similarities against all partners' thresholds.
        task = bar.add_task(f"{model}: intra-slide", total=n_slides)
        for a in range(n_slides):
            if not cache.has_intra(a):
                thr = np.stack(
                    [cache.load_pair(min(a, b), max(a, b)).match for b in _partners(a, n_slides)],
                    axis=1,
                )
                cache.save_intra(a, backend.intra_counts(feats[a], thr))
            bar.advance(task)
        del feats

        # Stage 3: ranks and metrics.
        task = bar.add_task(f"{model}: metrics", total=len(pairs))
        metrics = _assemble(store, cache, pairs, ks, out if save_ranks else None, bar, task)

    if save_ranks:
        save_npy(out / RANKS_DIR / "tiles.npy", np.column_stack([rows, store.coords()[rows]]))
    names = metric_names(ks)
    results = aggregate(metrics, names)
    _write_outputs(out, model, metrics, results, names, store)
    write_json(
        out / RUN_FILE,
        {
            "plismbench": __version__,
            "model": model,
            "features_dir": str(Path(features_dir).resolve()),
            "n_slides": len(store.slides),
            "n_pairs": len(pairs),
            "n_tiles": n,
            "n_tiles_available": store.n_tiles,
            "tile_subset": subset_desc,
            "dim": store.dim,
            "top_k": list(ks),
            "device": backend.name,
            "save_ranks": save_ranks,
            "cache_key": key,
            "pairs_computed": len(todo),
            "elapsed_s": round(time.perf_counter() - started, 3),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return EvaluationResult(model, out, metrics, results, n, ks, len(todo), reused=False)


def _partners(a: int, n_slides: int) -> list[int]:
    return [b for b in range(n_slides) if b != a]


def _column(a: int, b: int) -> int:
    """Column of partner ``b`` in slide ``a``'s intra table (partners skip ``a``)."""
    return b if b < a else b - 1


def _assemble(
    store: FeatureStore,
    cache: PairCache,
    pairs: list[tuple[int, int]],
    ks: tuple[int, ...],
    ranks_dir: Path | None,
    bar: Any,
    task: Any,
) -> pl.DataFrame:
    intra = [cache.load_intra(a) for a in range(len(store.slides))]
    records = []
    for i, j in pairs:
        cross = cache.load_pair(i, j)
        r_ab, r_ba = ranks_from_counts(
            cross, intra[i][:, _column(i, j)], intra[j][:, _column(j, i)]
        )
        s = summarise_ranks(r_ab, r_ba, ks)
        a, b = store.slides[i].name, store.slides[j].name
        rec: dict[str, Any] = {
            "slide_a": a.slide_id,
            "slide_b": b.slide_id,
            "staining_a": a.staining,
            "scanner_a": a.scanner,
            "staining_b": b.staining,
            "scanner_b": b.scanner,
            "pair_type": pair_type(a, b),
            "n_tiles": len(r_ab),
            "cosine_similarity": float(np.mean(cross.match, dtype=np.float64)),
        }
        rec.update({f"top_{k}_accuracy": s.top_k[k] for k in ks})
        rec.update({"mrr": s.mrr, "median_rank": s.median_rank})
        rec.update({f"top_{k}_accuracy_a_to_b": s.top_k_a_to_b[k] for k in ks})
        rec.update({f"top_{k}_accuracy_b_to_a": s.top_k_b_to_a[k] for k in ks})
        records.append(rec)
        if ranks_dir is not None:
            save_npy(
                ranks_dir / RANKS_DIR / f"{a.slide_id}---{b.slide_id}.npy",
                np.stack([r_ab, r_ba]).astype(np.int32),
            )
        bar.advance(task)
    return pl.DataFrame(records)


def _write_outputs(
    out: Path,
    model: str,
    metrics: pl.DataFrame,
    results: pl.DataFrame,
    names: list[str],
    store: FeatureStore,
) -> None:
    with atomic_path(out / "metrics.csv") as tmp:
        metrics.write_csv(tmp)
    with atomic_path(out / "metrics.parquet") as tmp:
        metrics.write_parquet(tmp)
    with atomic_path(out / "results.csv") as tmp:
        results.write_csv(tmp)
    n = int(metrics["n_tiles"][0])
    title = f"{model}: robustness on {len(store.slides)} slides, {n} tiles per slide"
    write_text(out / "results.md", results_markdown(results, names, title))
    provenance = store.provenance()
    if provenance:
        write_json(out / PROVENANCE_FILE, provenance)


def _complete(
    out: Path, model: str, key: str, ks: tuple[int, ...], save_ranks: bool
) -> EvaluationResult | None:
    """The finished result for the same inputs, if ``out`` holds one."""
    try:
        run = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if run.get("cache_key") != key or tuple(run.get("top_k", ())) != ks:
        return None
    if save_ranks and not run.get("save_ranks"):
        return None
    try:
        metrics = pl.read_parquet(out / "metrics.parquet")
        results = pl.read_csv(out / "results.csv")
    except (OSError, pl.exceptions.PolarsError):
        return None
    return EvaluationResult(model, out, metrics, results, run["n_tiles"], ks, 0, reused=True)
