"""The evaluate engine: every slide pair's metrics, exact, resumable, in bounded memory.

See :mod:`plismbench.evaluation.stages` for the stages, :mod:`plismbench.evaluation.cache`
for resuming and :mod:`plismbench.evaluation.outputs` for the output files. One process
at a time owns an output folder (an exclusive lock; a second one exits at once naming
the holder). Under ``torchrun`` the pairs and slides are split over the ranks.

Memory: the normalised features of the tiles used (slides x tiles x d x 4 bytes:
4.5 GB for 91 x 8,139 x 1,536), one N x N similarity block, and per pair 16 bytes per
tile (the match and both cross counts; 530 MB for 91 x 8,139).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench import __version__
from plismbench.errors import InputError
from plismbench.evaluation import subset as subsets
from plismbench.evaluation.cache import PairCache, cache_key, content_digests
from plismbench.evaluation.intervals import with_intervals
from plismbench.evaluation.outputs import (
    remove_outputs,
    remove_run,
    reusable,
    write_tables,
)
from plismbench.evaluation.stages import RANKS_DIR, Batch, Stages, pairs_per_file
from plismbench.metrics.aggregate import aggregate, metric_names
from plismbench.metrics.backend import Backend, get_backend
from plismbench.metrics.retrieval import DEFAULT_TOP_K
from plismbench.store.evaluation import RunRecord, model_dir, read_run, write_run
from plismbench.store.features import FeatureStore
from plismbench.utils.io import save_npy
from plismbench.utils.locks import folder_lock
from plismbench.utils.progress import make_progress

CACHE_DIR = ".cache"
Notice = Callable[[str], None]


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
    return model_dir(metrics_dir, n_tiles, model)


def validate_top_k(
    top_k: Sequence[int], n_tiles: int, notice: Notice | None = None
) -> tuple[int, ...]:
    """Sorted unique k values >= 1; those above the 2n - 1 candidates are dropped with
    a one-line notice (an error only when none is left)."""
    ks = sorted({int(k) for k in top_k})
    if not ks:
        raise InputError("--top-k: give at least one k")
    bad = [k for k in ks if k < 1]
    if bad:
        raise InputError(f"--top-k {bad}: k must be at least 1")
    limit = 2 * n_tiles - 1
    kept, dropped = [k for k in ks if k <= limit], [k for k in ks if k > limit]
    if not kept:
        raise InputError(
            f"--top-k {dropped}: k must lie in [1, {limit}] "
            f"(the candidates for a query with {n_tiles} tiles per slide)"
        )
    if dropped:
        (notice or _stderr)(
            f"note: --top-k {dropped} dropped: a query has only {limit} candidates "
            f"with {n_tiles} tiles per slide; using {kept}"
        )
    return tuple(kept)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


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
    allow_missing: bool = False,
    notice: Notice | None = None,
) -> EvaluationResult:
    """Evaluate one model's features: cosine and exact top-k for every slide pair.

    Reads ``features_dir/model/*/features.npy`` and writes ``metrics.csv``,
    ``metrics.parquet``, ``results.csv``, ``results.md`` and, last, ``run.json`` under
    ``metrics_dir/<n>_tiles/model/``. Re-running resumes; complete outputs for the same
    file contents are returned without recomputation unless ``overwrite``. A store of
    PLISM slides must hold all 91 unless ``allow_missing``. ``notice`` receives one-line
    warnings (default: stderr). Under ``torchrun`` the work is split over the ranks.
    """
    say = notice or _stderr
    _import_in_background("scipy.special")  # the intervals' t quantile, needed last
    ctx = _distributed(device)
    try:
        store = FeatureStore.open(features_dir, model, allow_missing=allow_missing)
        if (ctx is None or ctx.is_main) and (warning := store.check_model()) is not None:
            say(warning)
        rows, subset_desc = subsets.resolve(
            store.n_tiles, n_tiles, None if tile_subset is None else Path(tile_subset)
        )
        ks = validate_top_k(top_k, len(rows), say if ctx is None or ctx.is_main else _quiet)
        backend = get_backend(device if ctx is None else _rank_device(device, ctx))
        run = _Run(model, Path(features_dir), store, rows, subset_desc, ks, backend,
                   output_dir_for(metrics_dir, len(rows), model), workers, save_ranks,
                   progress, overwrite)  # fmt: skip
        if ctx is None:
            with folder_lock(run.out, what="this evaluation's output folder"):
                return run.single()
        return run.sharded(ctx)
    finally:
        if ctx is not None:
            from plismbench.utils.distributed import shutdown

            shutdown(ctx)


def _quiet(message: str) -> None:
    pass


def _import_in_background(module: str) -> None:
    """Import ``module`` on a daemon thread, overlapping the computation (0.3 s for
    scipy.special in a fresh process); a failure surfaces at the real import."""
    if module in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import-{module}", daemon=True).start()


def _n_pairs(batches: list[Batch]) -> int:
    return sum(len(b.pairs) for b in batches)


def ticker(bar: Any, task: Any, every_s: float = 0.1) -> Callable[..., None]:
    """``tick()`` advances ``task`` by one, refreshing the bar at most every ``every_s``
    (a rich update per pair cost more than a small pair); ``tick(flush=True)`` catches up."""
    state = {"pending": 0, "last": 0.0}
    lock = threading.Lock()  # pairs may finish on several threads

    def tick(flush: bool = False) -> None:
        with lock:
            state["pending"] += 0 if flush else 1
            now = time.monotonic()
            if state["pending"] and (flush or now - state["last"] >= every_s):
                bar.advance(task, state["pending"])
                state["pending"], state["last"] = 0, now

    return tick


def _distributed(device: str) -> Any:
    """torchrun's context when WORLD_SIZE > 1, else None (no torch import)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from plismbench.utils.distributed import init_distributed

    return init_distributed("cpu" if device == "cpu" else device)


def _rank_device(device: str, ctx: Any) -> str:
    return "cpu" if ctx.device.type == "cpu" else str(ctx.device)


class _Run:
    """One evaluation's inputs, and how to carry it out."""

    def __init__(
        self, model: str, features_dir: Path, store: FeatureStore, rows: np.ndarray,
        subset_desc: str, ks: tuple[int, ...], backend: Backend, out: Path,
        workers: int | None, save_ranks: bool, progress: bool, overwrite: bool,
    ) -> None:  # fmt: skip
        self.model, self.features_dir, self.store, self.rows = model, features_dir, store, rows
        self.subset_desc, self.ks, self.backend, self.out = subset_desc, ks, backend, out
        self.workers, self.save_ranks, self.overwrite = workers, save_ranks, overwrite
        self.progress = progress
        self.per_file = pairs_per_file(len(rows), store.dim)
        self.started = time.perf_counter()
        self.world_size = 1

    # -- preparation (the lock holder only) ---------------------------------------
    def prepare(self) -> tuple[str, dict[str, str], EvaluationResult | None]:
        """Mark the folder incomplete, key the inputs by content, reuse when current."""
        previous = read_run(self.out)
        remove_run(self.out)  # first: until the run finishes, the folder is incomplete
        digests = content_digests(self.store)
        key = cache_key(digests, self.rows, self.backend.name, self.per_file)
        done = None
        if not self.overwrite:
            done = reusable(previous, self.out, key, self.ks, self.save_ranks,
                            bool(self.store.provenance()))  # fmt: skip
        if done is not None and previous is not None:
            write_run(self.out, previous)  # unchanged, and again last
            metrics, results = done
            n = int(previous.n_tiles or len(self.rows))
            return key, digests, EvaluationResult(
                self.model, self.out, metrics, results, n, self.ks, 0, reused=True
            )
        remove_outputs(self.out)
        return key, digests, None

    # -- one process -------------------------------------------------------------------
    def single(self) -> EvaluationResult:
        key, digests, done = self.prepare()
        if done is not None:
            return done
        cache = PairCache(self.out / CACHE_DIR, key, reset=self.overwrite)
        stages = Stages(self.store, self.rows, self.backend, cache, self.per_file)
        batches, slides = stages.pending()
        bar = make_progress(self.progress)
        with self.backend.threads(self.workers), bar:
            self._compute(stages, batches, slides, bar)
            metrics = self._assemble(stages, bar)
        return self._finish(metrics, key, digests, _n_pairs(batches))

    def _compute(self, stages: Stages, batches: list[Batch], slides: list[int],
                 bar: Any) -> None:  # fmt: skip
        n_slides = len(self.store.slides)
        if not batches and not slides:
            return  # everything cached for these exact contents: no need to read them
        threads = self.workers or os.cpu_count() or 1
        load = bar.add_task(f"{self.model}: load features", total=n_slides)
        stages.load(threads, ticker(bar, load))
        tick = ticker(bar, bar.add_task(f"{self.model}: slide pairs", total=_n_pairs(batches)))
        stages.run_pairs(batches, tick)
        tick(flush=True)
        tick = ticker(bar, bar.add_task(f"{self.model}: intra-slide", total=len(slides)))
        stages.run_intras(slides, tick)
        tick(flush=True)
        stages.release()

    def _assemble(self, stages: Stages, bar: Any) -> pl.DataFrame:
        tick = ticker(bar, bar.add_task(f"{self.model}: metrics", total=len(stages.pairs)))
        ranks_dir = self.out if self.save_ranks else None
        metrics = stages.assemble(self.ks, ranks_dir, tick)
        tick(flush=True)
        return metrics

    def _finish(self, metrics: pl.DataFrame, key: str, digests: dict[str, str],
                computed: int) -> EvaluationResult:  # fmt: skip
        store, ks = self.store, self.ks
        if self.save_ranks:
            save_npy(self.out / RANKS_DIR / "tiles.npy",
                     np.column_stack([self.rows, store.coords()[self.rows]]))  # fmt: skip
        names = metric_names(ks)
        results = with_intervals(aggregate(metrics, names), metrics, names)
        write_tables(self.out, self.model, metrics, results, names, store)
        n = len(self.rows)
        provenance = store.provenance()
        write_run(
            self.out,
            RunRecord(
                plismbench=__version__,
                model=self.model,
                features_dir=str(self.features_dir.resolve()),
                slide_ids=tuple(sorted(store.slide_ids)),
                n_slides=len(store.slides),
                complete=store.complete,
                n_pairs=metrics.height,
                n_tiles=n,
                n_tiles_available=store.n_tiles,
                tile_subset=self.subset_desc,
                dim=store.dim,
                top_k=tuple(ks),
                device=self.backend.name,
                world_size=self.world_size,
                save_ranks=self.save_ranks,
                digests=digests,
                cache_key=key,
                pairs_computed=computed,
                elapsed_s=round(time.perf_counter() - self.started, 3),
                finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                model_hub_revision=_shared(provenance, "hub_revision"),
                dataset_revision=_shared(provenance, "source", "revision"),
            ),
        )
        return EvaluationResult(self.model, self.out, metrics, results, n, ks, computed, False)

    # -- torchrun ----------------------------------------------------------------------
    def sharded(self, ctx: Any) -> EvaluationResult:
        """Ranks split pairs and slides; rank 0 holds the lock and writes the outputs."""
        from plismbench.utils.distributed import barrier, broadcast_object

        self.world_size = ctx.world_size
        with contextlib.ExitStack() as stack:
            status: dict[str, Any] = {"error": None}
            if ctx.is_main:
                try:
                    stack.enter_context(
                        folder_lock(self.out, what="this evaluation's output folder")
                    )
                    key, digests, done = self.prepare()
                    status.update(key=key, digests=digests, done=done)
                    if done is None:
                        PairCache(self.out / CACHE_DIR, key, reset=self.overwrite)
                except InputError as exc:
                    status["error"] = exc.message
            status = broadcast_object(status)
            if status["error"] is not None:
                raise InputError(status["error"])
            if status["done"] is not None:
                return status["done"]  # type: ignore[no-any-return]
            cache = PairCache(self.out / CACHE_DIR, status["key"])
            stages = Stages(self.store, self.rows, self.backend, cache, self.per_file)
            all_batches, all_slides = stages.pending()  # the same on every rank
            batches = all_batches[ctx.rank :: ctx.world_size]
            bar = make_progress(self.progress and ctx.is_main)
            with self.backend.threads(self.workers), bar:
                if all_slides:  # (pending pairs imply pending slides)
                    self._compute_sharded(stages, batches, all_slides, ctx, bar)
                barrier()
                result: EvaluationResult | None = None
                if ctx.is_main:
                    metrics = self._assemble(stages, bar)
                    result = self._finish(metrics, status["key"], status["digests"],
                                          _n_pairs(all_batches))  # fmt: skip
                result = broadcast_object(result)
            assert result is not None
            return result

    def _compute_sharded(self, stages: Stages, batches: list[Batch],
                         all_slides: list[int], ctx: Any, bar: Any) -> None:  # fmt: skip
        from plismbench.utils.distributed import barrier

        threads = self.workers or os.cpu_count() or 1
        load = bar.add_task(f"{self.model}: load features", total=len(self.store.slides))
        stages.load(threads, ticker(bar, load))
        tick = ticker(bar, bar.add_task(f"{self.model}: slide pairs (rank 0)",
                                        total=_n_pairs(batches)))  # fmt: skip
        stages.run_pairs(batches, tick)
        tick(flush=True)
        barrier()  # every pair is in the cache before any intra stage reads it
        mine = all_slides[ctx.rank :: ctx.world_size]
        tick = ticker(bar, bar.add_task(f"{self.model}: intra-slide (rank 0)", total=len(mine)))
        stages.run_intras(mine, tick)
        tick(flush=True)
        stages.release()


def _shared(provenance: dict[str, Any], *path: str) -> Any:
    """A ``meta.json`` value that every slide shares (None if absent or varying)."""
    values = []
    for meta in provenance.values():
        value: Any = meta
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value)
    return values[0] if values and len({repr(v) for v in values}) == 1 else None
