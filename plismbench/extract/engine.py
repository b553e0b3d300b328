"""The extract engine: tiles from a :class:`TileSource` to ``features.npy`` per slide.

Layout: ``export_dir/<model>/<slide_id>/features.npy`` float32 ``(n, 3 + d)``,
columns (level, x, y) then the features, rows in the source's canonical order,
plus ``meta.json``. Work is resumable per slide and within a slide: finished
chunks live in ``<slide_id>/.partial/`` until the slide is complete, and every
file is written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plismbench.data.base import TileBatch, TileSource
from plismbench.errors import InputError
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.extractors.spec import PRECISIONS, ExtractorSpec
from plismbench.utils.device import resolve_device
from plismbench.utils.io import save_npy, write_json
from plismbench.utils.progress import make_progress

PARTIAL = ".partial"
FEATURES = "features.npy"
META = "meta.json"


@dataclass
class ExtractResult:
    """What one call (one rank under torchrun) did."""

    model: str
    export_dir: Path
    slides_done: list[str] = field(default_factory=list)
    slides_skipped: list[str] = field(default_factory=list)
    tiles: int = 0
    seconds: float = 0.0
    precision: str = "fp32"
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    worst_cosine: float | None = None

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0


# --- devices, precision, distribution ---------------------------------------------------------


def resolve_precision(precision: str | None, spec: ExtractorSpec, device: torch.device) -> str:
    """The spec's preferred dtype on a GPU, fp32 on a CPU, unless asked otherwise."""
    if precision is None or precision == "auto":
        return spec.dtype if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 autocast is not supported on CPU; use bf16 or fp32")
    return precision


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False


def _init_distributed(device_hint: str) -> _Dist:
    """Join the torchrun process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and device_hint in ("auto", "cuda")
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
        here = True
    return _Dist(rank=rank, world_size=world, local_rank=local, initialised_here=here)


# --- prefetching ------------------------------------------------------------------------------


_END = object()


class _Prefetcher:
    """Reads a slide's batches ahead of the model in threads, preserving canonical order.

    The rows from ``start`` on are split into segments of ``segment_batches``
    batches; ``workers`` threads read segments round-robin, each into its own
    bounded queue, and the consumer drains the segments in order. With
    ``workers=0`` batches are read inline. A source whose ``sequential``
    attribute is true (Hub streaming: every ``iter_batches`` call streams the
    slide from its first row) is read as one segment, by one thread.
    """

    def __init__(
        self,
        source: TileSource,
        slide_id: str,
        n_rows: int,
        batch_size: int,
        start: int,
        workers: int,
        pin: bool,
        segment_batches: int = 8,
        depth: int = 4,
    ):
        self.source = source
        self.slide_id = slide_id
        self.batch_size = batch_size
        self.pin = pin
        seg_rows = batch_size * segment_batches
        if getattr(source, "sequential", False):
            seg_rows = max(n_rows - start, 1)
            workers = min(workers, 1)
        self.workers = workers
        self.segments = [(s, min(s + seg_rows, n_rows)) for s in range(start, n_rows, seg_rows)]
        self.queues: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=depth * segment_batches) for _ in range(max(workers, 1))
        ]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def _to_tensor(self, batch: TileBatch) -> tuple[TileBatch, torch.Tensor]:
        tiles = torch.from_numpy(np.ascontiguousarray(batch.tiles))
        if self.pin:
            tiles = tiles.pin_memory()
        return batch, tiles

    def _read(self, lo: int, hi: int) -> Iterator[TileBatch]:
        row = lo
        for batch in self.source.iter_batches(self.slide_id, self.batch_size, start=lo):
            n = len(batch.tiles)
            if batch.start != row:
                raise InputError(
                    f"source gave slide {self.slide_id} rows from {batch.start}, expected {row}"
                )
            if row + n > hi:
                n = hi - row
                batch = TileBatch(batch.slide_id, row, batch.coords[:n], batch.tiles[:n])
            yield batch
            row += n
            if row >= hi:
                return
        if row < hi:
            raise InputError(f"source ended slide {self.slide_id} at row {row}, expected {hi}")

    def _worker(self, k: int) -> None:
        q = self.queues[k]
        try:
            for idx in range(k, len(self.segments), self.workers):
                lo, hi = self.segments[idx]
                for batch in self._read(lo, hi):
                    if self.stop.is_set():
                        return
                    q.put(self._to_tensor(batch))
                q.put(_END)
        except BaseException as exc:  # surfaced to the consumer
            q.put(exc)

    def __iter__(self) -> Iterator[tuple[TileBatch, torch.Tensor]]:
        if self.workers <= 0:
            for lo, hi in self.segments:
                for batch in self._read(lo, hi):
                    yield self._to_tensor(batch)
            return
        for k in range(self.workers):
            thread = threading.Thread(target=self._worker, args=(k,), daemon=True)
            thread.start()
            self.threads.append(thread)
        try:
            for idx in range(len(self.segments)):
                q = self.queues[idx % self.workers]
                while True:
                    item = q.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            self.close()

    def close(self) -> None:
        self.stop.set()
        for q in self.queues:
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for thread in self.threads:
            thread.join(timeout=5)


# --- writing ----------------------------------------------------------------------------------


class _ChunkWriter:
    """Off the hot loop: copies features to the host and saves chunk checkpoints."""

    def __init__(self, partial: Path, chunk_rows: int, start: int, embed_dim: int):
        self.partial = partial
        self.chunk_rows = chunk_rows
        self.embed_dim = embed_dim
        self.next_row = start
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.q: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, start: int, coords: np.ndarray, feats: torch.Tensor) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((start, coords, feats))

    def _flush(self) -> None:
        if not self.buffered:
            return
        rows = np.concatenate(self.buffer, axis=0)
        first = self.next_row - self.buffered
        save_npy(self.partial / f"chunk_{first:09d}.npy", rows)
        self.buffer, self.buffered = [], 0

    def _run(self) -> None:
        done = False
        try:
            while True:
                item = self.q.get()
                if item is None:
                    done = True
                    self._flush()
                    return
                start, coords, feats = item
                host = feats.to("cpu").numpy()
                if start != self.next_row:
                    raise RuntimeError(f"writer got rows from {start}, expected {self.next_row}")
                block = np.empty((len(host), 3 + self.embed_dim), dtype=np.float32)
                block[:, :3] = coords
                block[:, 3:] = host
                self.buffer.append(block)
                self.buffered += len(block)
                self.next_row += len(block)
                if self.buffered >= self.chunk_rows:
                    self._flush()
        except BaseException as exc:
            self.error = exc
            # Keep draining until close(): put() and close() must never block on a dead writer.
            while not done:
                done = self.q.get() is None

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _chunks(partial: Path) -> list[tuple[int, Path]]:
    out = []
    for path in sorted(partial.glob("chunk_*.npy")):
        with contextlib.suppress(ValueError):
            out.append((int(path.stem.split("_")[1]), path))
    return sorted(out)


def _resume_row(partial: Path, fingerprint: dict[str, Any], embed_dim: int) -> int:
    """Rows already checkpointed (contiguous from 0); stale or foreign partials are cleared."""
    state_path = partial / "state.json"
    if partial.exists():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = None
        if state != fingerprint:
            shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    if not state_path.exists():
        write_json(state_path, fingerprint)
    row = 0
    for first, path in _chunks(partial):
        if first != row:
            break
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or arr.shape[1] != 3 + embed_dim:
            break
        row += arr.shape[0]
    # Drop anything after a gap: it is recomputed.
    for first, path in _chunks(partial):
        if first >= row:
            path.unlink(missing_ok=True)
    return row


def library_versions() -> dict[str, str]:
    """Versions recorded in ``meta.json``."""
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("plismbench", "timm", "numpy", "huggingface_hub", "safetensors", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
    return versions


def describe_source(source: TileSource) -> Any:
    """A JSON-friendly description of a source (its ``describe()`` if it has one)."""
    describe = getattr(source, "describe", None)
    if callable(describe):
        with contextlib.suppress(Exception):
            return describe()
    return {"type": type(source).__module__ + "." + type(source).__qualname__}


# --- precision check --------------------------------------------------------------------------


@torch.inference_mode()
def precision_drift(extractor: FeatureExtractor, tiles: torch.Tensor) -> float:
    """Worst cosine similarity between fp32 features and ``extractor.precision`` ones."""
    chosen = extractor.precision
    try:
        extractor.precision = "fp32"
        ref = extractor(tiles)
        extractor.precision = chosen
        got = extractor(tiles)
    finally:
        extractor.precision = chosen
    cos = torch.nn.functional.cosine_similarity(ref.double(), got.double(), dim=1, eps=1e-12)
    return float(cos.min())


# --- the engine -------------------------------------------------------------------------------


def extract(
    model: str | os.PathLike[str] | ExtractorSpec | FeatureExtractor,
    source: TileSource,
    export_dir: str | os.PathLike[str],
    *,
    batch_size: int = 256,
    workers: int = 4,
    device: str | torch.device = "auto",
    precision: str | None = None,
    compile: bool = False,
    overwrite: bool = False,
    weights: str | os.PathLike[str] | None = None,
    check_precision: bool = False,
    precision_threshold: float = 0.99,
    force: bool = False,
    chunk_rows: int = 4096,
    slides: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> ExtractResult:
    """Extract features of every slide of ``source`` into ``export_dir/<model>/``.

    ``model`` is a registry name, ``hf-hub:`` id, export folder, spec or a loaded
    :class:`FeatureExtractor`. Finished slides are skipped unless ``overwrite``;
    an interrupted slide resumes from its last chunk checkpoint (``chunk_rows``).
    Under ``torchrun`` slides are sharded across ranks. ``check_precision``
    compares ``precision`` against fp32 on a probe batch and refuses to go on
    below ``precision_threshold`` unless ``force``. ``progress`` shows rich progress
    bars (slides and tiles) on rank 0.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if chunk_rows < 1:
        raise InputError(f"chunk rows must be >= 1, got {chunk_rows}")
    say = log or (lambda message: None)
    dist_info = _init_distributed(str(device))
    try:
        return _extract(
            model, source, Path(export_dir), dist_info,
            batch_size=batch_size, workers=workers, device=device, precision=precision,
            compile=compile, overwrite=overwrite, weights=weights,
            check_precision=check_precision, precision_threshold=precision_threshold,
            force=force, chunk_rows=chunk_rows, slides=slides, say=say,
            progress=progress and dist_info.rank == 0,
        )  # fmt: skip
    finally:
        if dist_info.initialised_here:
            import torch.distributed as dist

            with contextlib.suppress(Exception):
                dist.barrier()
            dist.destroy_process_group()


def _extract(
    model: str | os.PathLike[str] | ExtractorSpec | FeatureExtractor,
    source: TileSource,
    export_dir: Path,
    dist_info: _Dist,
    *,
    batch_size: int,
    workers: int,
    device: str | torch.device,
    precision: str | None,
    compile: bool,
    overwrite: bool,
    weights: str | os.PathLike[str] | None,
    check_precision: bool,
    precision_threshold: float,
    force: bool,
    chunk_rows: int,
    slides: list[str] | None,
    say: Callable[[str], None],
    progress: bool = False,
) -> ExtractResult:
    if isinstance(model, FeatureExtractor):
        extractor = model
        dev = extractor.device
        if precision is not None:
            extractor.precision = resolve_precision(precision, extractor.spec, dev)
    else:
        spec = get_extractor(model)
        dev = resolve_device(device, dist_info.local_rank)
        extractor = load_extractor(
            spec, device=dev, weights=weights, precision=resolve_precision(precision, spec, dev)
        )
    spec = extractor.spec
    run_model: Callable[[torch.Tensor], torch.Tensor] = extractor
    if compile:
        extractor.backbone = torch.compile(extractor.backbone)  # type: ignore[assignment]
    all_slides = list(source.slide_ids())
    if slides is not None:
        unknown = sorted(set(slides) - set(all_slides))
        if unknown:
            raise InputError(f"slides not in the source: {', '.join(unknown[:5])}")
        all_slides = [s for s in all_slides if s in set(slides)]
    mine = all_slides[dist_info.rank :: dist_info.world_size]
    out_root = export_dir / spec.folder
    result = ExtractResult(
        model=spec.name, export_dir=out_root, precision=extractor.precision,
        device=str(dev), rank=dist_info.rank, world_size=dist_info.world_size,
    )  # fmt: skip
    weights_sha = extractor.weights_sha256()
    fingerprint = {
        "model": spec.name,
        "weights_sha256": weights_sha,
        "precision": extractor.precision,
        "pooling": spec.pooling,
        "embed_dim": spec.embed_dim,
    }
    pin = dev.type == "cuda"
    t0 = time.perf_counter()
    with make_progress(progress) as bar:
        slides_task = bar.add_task(f"{spec.name}: slides", total=len(mine))
        tiles_task = bar.add_task(f"{spec.name}: tiles", total=None)
        for slide_id in mine:
            _extract_slide(
                slide_id, source, extractor, run_model, out_root, fingerprint, weights_sha,
                result, dev, pin, batch_size, workers, overwrite, check_precision,
                precision_threshold, force, chunk_rows, say, bar, tiles_task,
            )  # fmt: skip
            bar.advance(slides_task)
    result.seconds = time.perf_counter() - t0
    return result


def _extract_slide(
    slide_id: str, source: TileSource, extractor: FeatureExtractor,
    run_model: Callable[[torch.Tensor], torch.Tensor], out_root: Path,
    fingerprint: dict[str, Any], weights_sha: str, result: ExtractResult, dev: torch.device,
    pin: bool, batch_size: int, workers: int, overwrite: bool, check_precision: bool,
    precision_threshold: float, force: bool, chunk_rows: int, say: Callable[[str], None],
    bar: Any, tiles_task: Any,
) -> None:  # fmt: skip
    """One slide: resume from its last chunk, extract, finalise atomically."""
    spec = extractor.spec
    slide_dir = out_root / slide_id
    final = slide_dir / FEATURES
    partial = slide_dir / PARTIAL
    if final.exists() and not overwrite:
        result.slides_skipped.append(slide_id)
        return
    if overwrite:
        shutil.rmtree(partial, ignore_errors=True)
    coords = np.asarray(source.coords(slide_id), dtype=np.int64)
    n_rows = len(coords)
    start = _resume_row(partial, fingerprint, spec.embed_dim)
    if start > n_rows:
        shutil.rmtree(partial, ignore_errors=True)
        start = _resume_row(partial, fingerprint, spec.embed_dim)
    if start:
        say(f"{slide_id}: resuming at row {start}/{n_rows}")
    bar.reset(tiles_task, total=n_rows, completed=start, description=slide_id)
    t_slide = time.perf_counter()
    writer = _ChunkWriter(partial, chunk_rows, start, spec.embed_dim)
    prefetch = _Prefetcher(source, slide_id, n_rows, batch_size, start, workers, pin)
    try:
        with torch.inference_mode():
            for batch, tiles in prefetch:
                x = tiles.to(dev, non_blocking=True)
                if check_precision and result.worst_cosine is None:
                    result.worst_cosine = _check(extractor, x[:16], precision_threshold, force, say)
                feats = run_model(x)
                writer.put(batch.start, batch.coords, feats)
                bar.advance(tiles_task, len(batch.coords))
    finally:
        prefetch.close()
        writer.close()
    _finalise(slide_dir, partial, coords, spec, extractor, weights_sha, source, batch_size)
    result.slides_done.append(slide_id)
    result.tiles += n_rows - start
    dt = time.perf_counter() - t_slide
    done = n_rows - start
    say(f"{slide_id}: {done} tiles in {dt:.1f}s ({done / max(dt, 1e-9):.0f}/s)")


def _check(
    extractor: FeatureExtractor, probe: torch.Tensor, threshold: float, force: bool,
    say: Callable[[str], None],
) -> float:  # fmt: skip
    worst = precision_drift(extractor, probe)
    say(f"precision check: worst cosine {worst:.6f} ({extractor.precision} vs fp32)")
    if worst < threshold and not force:
        raise InputError(
            f"{extractor.name}: {extractor.precision} features drift from fp32 (worst cosine "
            f"{worst:.4f} < {threshold}); use --precision fp32 or --force"
        )
    return worst


def _finalise(
    slide_dir: Path,
    partial: Path,
    coords: np.ndarray,
    spec: ExtractorSpec,
    extractor: FeatureExtractor,
    weights_sha: str,
    source: TileSource,
    batch_size: int,
) -> None:
    """Assemble the chunks, check them against the source's coordinates, write atomically."""
    parts = [np.load(path) for _, path in _chunks(partial)]
    if parts:
        features = np.concatenate(parts, axis=0)
    else:
        features = np.empty((0, 3 + spec.embed_dim), dtype=np.float32)
    if len(features) != len(coords) or not np.array_equal(
        features[:, :3], coords.astype(np.float32)
    ):
        raise InputError(
            f"slide {slide_dir.name}: assembled rows do not match the source's coordinates; "
            f"delete {partial} and run again"
        )
    save_npy(slide_dir / FEATURES, features.astype(np.float32, copy=False))
    meta = {
        "model": spec.name,
        "slide_id": slide_dir.name,
        "tile_count": len(features),
        "embed_dim": spec.embed_dim,
        "pooling": spec.pooling,
        "num_prefix_tokens": spec.num_prefix_tokens,
        "input_size": spec.input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "hub_id": spec.hub_id,
        "weights_sha256": weights_sha,
        "precision": extractor.precision,
        "device": str(extractor.device),
        "batch_size": batch_size,
        "source": describe_source(source),
        "versions": library_versions(),
        "argv": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(slide_dir / META, meta)
    shutil.rmtree(partial, ignore_errors=True)
