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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from plismbench.data.base import TileSource
from plismbench.errors import InputError
from plismbench.extraction.config import (
    ExtractConfig,
    check_writable,
    resolve_precision,
    with_overrides,
)
from plismbench.extraction.fingerprint import (
    describe_source,
    fingerprint,
    library_versions,
    pin_folder,
    weights_digest,
)
from plismbench.extraction.job import Job
from plismbench.extraction.layers import parse_layers
from plismbench.extraction.precision import precision_drift
from plismbench.extractors.access import resolved_revision
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.extractors.spec import ExtractorSpec
from plismbench.utils import distributed
from plismbench.utils.device import resolve_device
from plismbench.utils.paths import ensure_writable_dir
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
    if isinstance(model, FeatureExtractor):
        spec = model.spec
        if cfg.pooling not in (None, spec.pooling) or cfg.revision is not None:
            raise InputError(
                "pooling and revision overrides need the model by name, not a loaded extractor"
            )
    else:
        spec = with_overrides(get_extractor(model), cfg.pooling, cfg.revision)
        model = spec
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
    fp = fingerprint(extractor, weights_sha, resolved_revision(extractor.spec))
    ensure_writable_dir(out_root, "--out-dir")  # checked first; created once the model loaded
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
    job = Job(extractor, source, out_root, fp, layers, cfg, result, time.time())
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
