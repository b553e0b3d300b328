"""One run's slides: status against the fingerprint, claims, extraction, atomic finish."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from plismbench.data.base import TileSource
from plismbench.errors import InputError
from plismbench.extraction.claims import Claims
from plismbench.extraction.config import ExtractConfig
from plismbench.extraction.fingerprint import (
    build_meta,
    differences,
    read_json,
    refuse,
    source_digest,
)
from plismbench.extraction.layers import forward_with_layers
from plismbench.extraction.precision import check_precision
from plismbench.extraction.prefetch import Prefetcher
from plismbench.extraction.writer import (
    PARTIAL,
    ChunkWriter,
    assemble,
    resume_row,
)
from plismbench.extractors.module import FeatureExtractor
from plismbench.store.features import FEATURES_FILE as FEATURES
from plismbench.store.features import LAYERS_DIR as LAYERS
from plismbench.store.features import META_FILE as META
from plismbench.utils.io import save_npy, write_json

if TYPE_CHECKING:
    from plismbench.extraction.engine import ExtractResult


class Job:
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
        self._digests: dict[str, str] = {}

    def slide_fp(self, slide_id: str) -> dict[str, Any]:
        """The run's fingerprint plus this slide's ``source_digest`` (read once per run)."""
        if slide_id not in self._digests:
            self._digests[slide_id] = source_digest(self.source, slide_id)
        return {**self.fp, "source_digest": self._digests[slide_id]}

    def holder(self, slide_id: str) -> str | None:
        return self.claims.holder(self.out_root / slide_id)

    def status(self, slide_dir: Path) -> tuple[str, list[int]]:
        """``("done" | "todo" | "redo", layers to store)``; a foreign slide is refused."""
        meta_path, feats = slide_dir / META, slide_dir / FEATURES
        meta = read_json(meta_path)
        overwrite = self.cfg.overwrite
        if meta is not None and feats.exists():
            diffs = differences(meta, self.slide_fp(slide_dir.name))
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
            if state is not None and not differences(state, self.slide_fp(slide_dir.name)):
                return "todo", self.layers  # this setting was interrupted while finishing
            if read_json(meta_path) is not None:
                return self.status(slide_dir)  # another process finished it meanwhile
            if self.claims.holder(slide_dir) is not None:
                return "todo", self.layers  # another process is finishing it now
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
            elif not (slide_dir / FEATURES).exists():
                (slide_dir / META).unlink(missing_ok=True)  # a meta.json left without features
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
        state = {**self.slide_fp(slide_id), "layers": layers}
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
                        result.worst_cosine = check_precision(ex, x[:16], cfg)
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
            self.slide_fp(slide_id), self.extractor, slide_id, len(features), layers, self.source,
            self.cfg.batch_size,
        )  # fmt: skip
        if self.result.worst_cosine is not None:  # --check-precision ran in this run
            meta["precision_check"] = {
                "precision": self.extractor.precision,
                "against": "fp32",
                "worst_cosine": self.result.worst_cosine,
                "threshold": self.cfg.precision_threshold,
            }
        write_json(slide_dir / META, meta)
        shutil.rmtree(partial, ignore_errors=True)
