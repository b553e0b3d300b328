"""An in-memory TileSource for the extract tests: real H&E crops, canonical order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from plismbench.data.base import TileBatch

SVS = Path("/work/shared/data/cmu_small_region.svs")


def he_crops(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """``n`` (size, size, 3) uint8 crops of the CMU H&E region (random noise if absent)."""
    rng = np.random.default_rng(seed)
    if SVS.exists():
        from PIL import Image

        with Image.open(SVS) as im:
            image = np.asarray(im.convert("RGB"))
        ys = rng.integers(0, image.shape[0] - size, n)
        xs = rng.integers(0, image.shape[1] - size, n)
        return np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


class MemorySource:
    """Slides share tile ids (coords); each slide is a colour-shifted copy of the base crops."""

    def __init__(self, n_slides: int = 3, n_tiles: int = 20, size: int = 224, seed: int = 0):
        base = he_crops(n_tiles, size, seed)
        self.slides = [f"SLIDE{k:02d}" for k in range(n_slides)]
        grid = np.array([(0, (i % 5) * size, (i // 5) * size) for i in range(n_tiles)])
        order = np.lexsort((grid[:, 2], grid[:, 1]))
        self._coords = grid[order].astype(np.int64)
        self.tiles = {}
        for k, sid in enumerate(self.slides):
            shift = np.array([k * 7, -k * 5, k * 3], dtype=np.int16)
            self.tiles[sid] = np.clip(base[order].astype(np.int16) + shift, 0, 255).astype(np.uint8)
        self.reads = 0

    def slide_ids(self) -> list[str]:
        return list(self.slides)

    def coords(self, slide_id: str) -> np.ndarray:
        return self._coords.copy()

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        tiles = self.tiles[slide_id]
        for lo in range(start, len(tiles), batch_size):
            hi = min(lo + batch_size, len(tiles))
            self.reads += hi - lo
            yield TileBatch(slide_id, lo, self._coords[lo:hi], tiles[lo:hi])

    def describe(self) -> dict[str, object]:
        return {"type": "memory", "slides": len(self.slides)}


class CrashingSource(MemorySource):
    """Raises after ``crash_after`` tiles have been read (a kill mid-slide)."""

    def __init__(self, crash_after: int, **kwargs: int):
        super().__init__(**kwargs)
        self.crash_after = crash_after

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        for batch in super().iter_batches(slide_id, batch_size, start):
            if self.reads > self.crash_after:
                raise KeyboardInterrupt("simulated kill")
            yield batch
