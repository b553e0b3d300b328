"""The extract engine: tiles from a :class:`TileSource` to ``features.npy`` per slide.

Layout: ``export_dir/<model>/<slide_id>/features.npy`` float32 ``(n, 3 + d)``,
columns (level, x, y) then the features, rows in the source's canonical order,
plus ``meta.json`` (written last: a slide without it is not finished) and, with
``layers``, ``<slide_id>/layers/<L>/features.npy`` in the same layout. Work is
resumable per slide and within a slide (chunk checkpoints in ``<slide_id>/.partial/``);
slides are claimed one at a time so concurrent processes split them; every file is
written atomically.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plismbench.data.base import TileSource
from plismbench.errors import InputError
from plismbench.extract.claims import Claims
from plismbench.extract.config import ExtractConfig, check_writable, resolve_precision
from plismbench.extract.fingerprint import (
    build_meta,
    describe_source,
    differences,
    fingerprint,
    library_versions,
    pin_folder,
    read_json,
    refuse,
    weights_digest,
)
from plismbench.extract.layers import forward_with_layers, parse_layers
from plismbench.extract.prefetch import Prefetcher
from plismbench.extract.writer import (
    FEATURES,
    LAYERS,
    META,
    PARTIAL,
    ChunkWriter,
    assemble,
    resume_row,
)
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.extractors.spec import ExtractorSpec
from plismbench.utils import distributed
from plismbench.utils.device import resolve_device
from plismbench.utils.io import save_npy, write_json
from plismbench.utils.progress import make_progress

__all__ = [
    "ExtractConfig",
    "ExtractResult",
    "describe_source",
    "extract",
    "library_versions",
    "precision_drift",
    "resolve_device",
    "resolve_precision",
]

Model = str | os.PathLike[str] | ExtractorSpec | FeatureExtractor


@dataclass
class ExtractResult:
    """What one call (one rank under torchrun) did."""

    model: str
    export_dir: Path
    slides_done: list[str] = field(default_factory=list)
    slides_skipped: list[str] = field(default_factory=list)
    #: Slides left to other live processes (``wait=False``).
    slides_elsewhere: list[str] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)
    tiles: int = 0
    seconds: float = 0.0
    precision: str = "fp32"
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    worst_cosine: float | None = None
    weights_sha256: str = ""

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0


def extract(
    model: Model,
    source: TileSource,
    export_dir: str | os.PathLike[str],
    config: ExtractConfig | None = None,
    **options: Any,
) -> ExtractResult:
    """Extract features of every slide of ``source`` into ``export_dir/<model>/``.

    ``model`` is a registry name, ``hf-hub:`` id, export folder, spec or a loaded
    :class:`FeatureExtractor`. Options are the fields of :class:`ExtractConfig`, given
    as ``config`` or as keywords. A slide is reused only when its ``meta.json`` matches
    this run (model, weights digest, precision, preprocessing); otherwise the run stops
    with one line unless ``overwrite``. Interrupted slides resume from their last chunk.
    Processes (and torchrun ranks) claim slides one at a time and never collide.
    """
    cfg = ExtractConfig.from_options(config, options)
    cfg.validate()
    spec = model.spec if isinstance(model, FeatureExtractor) else get_extractor(model)
    out_root = Path(export_dir) / spec.folder
    check_writable(out_root)  # before any model or data is loaded
    device = model.device if isinstance(model, FeatureExtractor) else cfg.device
    ctx = distributed.init_distributed(device)
    try:
        return _run(model, source, out_root, ctx, cfg)
    finally:
        if ctx.initialised_here:
            with contextlib.suppress(Exception):
                distributed.barrier()  # rank 0 returns once every rank's slides are done
        distributed.shutdown(ctx)


def _load(model: Model, ctx: distributed.DistContext, cfg: ExtractConfig) -> FeatureExtractor:
    if isinstance(model, FeatureExtractor):
        if cfg.precision is not None:
            model.precision = resolve_precision(cfg.precision, model.spec, model.device)
        return model
    spec = get_extractor(model)
    precision = resolve_precision(cfg.precision, spec, ctx.device)
    return load_extractor(spec, device=ctx.device, weights=cfg.weights, precision=precision)


def _run(
    model: Model, source: TileSource, out_root: Path, ctx: distributed.DistContext,
    cfg: ExtractConfig,
) -> ExtractResult:  # fmt: skip
    extractor = _load(model, ctx, cfg)
    weights_sha = weights_digest(extractor)  # before compiling, which renames parameters
    layers = parse_layers(cfg.layers, extractor)
    if cfg.compile:
        extractor.backbone = torch.compile(extractor.backbone)  # type: ignore[assignment]
    fp = fingerprint(extractor, weights_sha)
    pin_folder(out_root, fp, cfg.overwrite)
    all_slides = list(source.slide_ids())
    if cfg.slides is not None:
        unknown = sorted(set(cfg.slides) - set(all_slides))
        if unknown:
            raise InputError(f"slides not in the source: {', '.join(unknown[:5])}")
        all_slides = [s for s in all_slides if s in set(cfg.slides)]
    mine = distributed.shard(all_slides, ctx.rank, ctx.world_size)
    result = ExtractResult(
        model=extractor.spec.name, export_dir=out_root, precision=extractor.precision,
        device=str(extractor.device), rank=ctx.rank, world_size=ctx.world_size, layers=layers,
        weights_sha256=weights_sha,
    )  # fmt: skip
    job = _Job(extractor, source, out_root, fp, layers, cfg, result, time.time())
    for slide_id in mine:  # refuse foreign slides before any work (a few small JSON reads)
        job.status(out_root / slide_id)
    t0 = time.perf_counter()
    try:
        with make_progress(cfg.progress and ctx.is_main) as bar:
            job.bar = bar
            slides_task = bar.add_task(f"{extractor.name}: slides", total=len(mine))
            job.tiles_task = bar.add_task(f"{extractor.name}: tiles", total=None)
            busy = []
            for slide_id in mine:
                if not job.slide(slide_id):
                    busy.append(slide_id)
                bar.advance(slides_task)
            if busy:
                cfg.say(f"{len(busy)} slides are being extracted by other processes")
            while busy and cfg.wait:
                busy = [s for s in busy if job.holder(s) is not None or not job.slide(s)]
                if busy:
                    time.sleep(cfg.poll_s)
            result.slides_elsewhere = busy
    finally:
        job.claims.close()
    result.seconds = time.perf_counter() - t0
    return result


class _Job:
    """One run's slides: status against the fingerprint, claims, extraction, finish."""

    def __init__(
        self, extractor: FeatureExtractor, source: TileSource, out_root: Path,
        fp: dict[str, Any], layers: list[int], cfg: ExtractConfig, result: ExtractResult,
        started: float,
    ):  # fmt: skip
        self.extractor = extractor
        self.source = source
        self.out_root = out_root
        self.fp = fp
        self.layers = layers
        self.cfg = cfg
        self.result = result
        self.started = started
        self.claims = Claims(cfg.stale_after_s)
        self.bar: Any = None
        self.tiles_task: Any = None

    def holder(self, slide_id: str) -> str | None:
        return self.claims.holder(self.out_root / slide_id)

    def status(self, slide_dir: Path) -> tuple[str, list[int]]:
        """``("done" | "todo" | "redo", layers to store)``; a foreign slide is refused."""
        meta_path, feats = slide_dir / META, slide_dir / FEATURES
        meta = read_json(meta_path)
        overwrite = self.cfg.overwrite
        if meta is not None and feats.exists():
            diffs = differences(meta, self.fp)
            if diffs:
                if not overwrite:
                    raise refuse(meta_path, diffs)
                return "redo", self.layers
            have = sorted(int(v) for v in meta.get("layers", []))
            complete = set(self.layers) <= set(have) and all(
                (slide_dir / LAYERS / str(v) / FEATURES).exists() for v in self.layers
            )
            fresh = meta_path.stat().st_mtime >= self.started  # finished during this run
            if complete and (fresh or not overwrite):
                return "done", have
            return "redo", self.layers if overwrite else sorted(set(self.layers) | set(have))
        if feats.exists():
            state = read_json(slide_dir / PARTIAL / "state.json")
            if state is not None and not differences(state, self.fp):
                return "todo", self.layers  # this setting was interrupted while finishing
            if not overwrite:
                raise InputError(
                    f"{feats} has no valid meta.json saying what made it; "
                    "use --overwrite to replace it"
                )
            return "redo", self.layers
        return "todo", self.layers

    def slide(self, slide_id: str) -> bool:
        """Do (or skip) one slide; False when another live process holds it."""
        slide_dir = self.out_root / slide_id
        state, _ = self.status(slide_dir)
        if state == "done":
            self.result.slides_skipped.append(slide_id)
            return True
        if not self.claims.take(slide_dir):
            return False
        try:
            state, layers = self.status(slide_dir)  # another process may have just finished it
            if state == "done":
                self.result.slides_skipped.append(slide_id)
                return True
            if state == "redo":
                (slide_dir / META).unlink(missing_ok=True)
                (slide_dir / FEATURES).unlink(missing_ok=True)
                shutil.rmtree(slide_dir / LAYERS, ignore_errors=True)
                shutil.rmtree(slide_dir / PARTIAL, ignore_errors=True)
            self._extract(slide_id, slide_dir, layers)
        finally:
            self.claims.drop(slide_dir)
        return True

    def _extract(self, slide_id: str, slide_dir: Path, layers: list[int]) -> None:
        """Resume from the last chunk, extract, finish atomically."""
        ex, cfg, result = self.extractor, self.cfg, self.result
        coords = np.asarray(self.source.coords(slide_id), dtype=np.int64)
        n_rows = len(coords)
        partial = slide_dir / PARTIAL
        state = {**self.fp, "layers": layers}
        start = resume_row(partial, state, ex.embed_dim, layers, cfg.overwrite)
        if start > n_rows:
            shutil.rmtree(partial, ignore_errors=True)
            start = resume_row(partial, state, ex.embed_dim, layers, cfg.overwrite)
        if start:
            cfg.say(f"{slide_id}: resuming at row {start}/{n_rows}")
        self.bar.reset(self.tiles_task, total=n_rows, completed=start, description=slide_id)
        t_slide = time.perf_counter()
        dev = ex.device
        writer = ChunkWriter(slide_id, partial, cfg.chunk_rows, start, ex.embed_dim, layers)
        prefetch = Prefetcher(
            self.source, slide_id, n_rows, cfg.batch_size, start, cfg.workers, dev.type == "cuda"
        )
        try:
            with torch.inference_mode():
                for batch, tiles in prefetch:
                    x = tiles.to(dev, non_blocking=True)
                    if cfg.check_precision and result.worst_cosine is None:
                        result.worst_cosine = _check(ex, x[:16], cfg)
                    if layers:
                        feats, layer_feats = forward_with_layers(ex, x, layers)
                        writer.put(batch.start, batch.coords, feats, layer_feats)
                    else:
                        writer.put(batch.start, batch.coords, ex(x))
                    self.bar.advance(self.tiles_task, len(batch.coords))
        finally:
            prefetch.close()
            writer.close()
        self._finish(slide_id, slide_dir, coords, layers)
        result.slides_done.append(slide_id)
        done = n_rows - start
        result.tiles += done
        dt = time.perf_counter() - t_slide
        cfg.say(f"{slide_id}: {done} tiles in {dt:.1f}s ({done / max(dt, 1e-9):.0f}/s)")

    def _finish(
        self, slide_id: str, slide_dir: Path, coords: np.ndarray, layers: list[int]
    ) -> None:
        """Assemble the chunks (checked against the coordinates); ``meta.json`` goes last."""
        partial, dim = slide_dir / PARTIAL, self.extractor.embed_dim
        features = assemble(partial, coords, dim)
        stacks = {layer: assemble(partial, coords, dim, layer) for layer in layers}
        save_npy(slide_dir / FEATURES, features)
        for layer, array in stacks.items():
            save_npy(slide_dir / LAYERS / str(layer) / FEATURES, array)
        meta = build_meta(
            self.fp, self.extractor, slide_id, len(features), layers, self.source,
            self.cfg.batch_size,
        )  # fmt: skip
        write_json(slide_dir / META, meta)
        shutil.rmtree(partial, ignore_errors=True)


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


def _check(extractor: FeatureExtractor, probe: torch.Tensor, cfg: ExtractConfig) -> float:
    worst = precision_drift(extractor, probe)
    cfg.say(f"precision check: worst cosine {worst:.6f} ({extractor.precision} vs fp32)")
    if worst < cfg.precision_threshold and not cfg.force:
        raise InputError(
            f"{extractor.name}: {extractor.precision} features drift from fp32 (worst cosine "
            f"{worst:.4f} < {cfg.precision_threshold}); use --precision fp32 or --force"
        )
    return worst
