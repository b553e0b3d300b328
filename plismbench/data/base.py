"""The one tile-source interface that every reader implements and extract consumes.

A source yields, per slide, tiles in the canonical PLISM order: sorted by the
(x, y) of their tile ids, identical tile ids in every slide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TileBatch:
    """A contiguous batch of one slide's tiles in canonical order."""

    slide_id: str
    #: Row index of the first tile of the batch within the slide's canonical order.
    start: int
    #: (B, 3) int64 array of (level, x, y), the first three columns of ``features.npy``.
    coords: np.ndarray
    #: (B, H, W, 3) uint8 RGB tiles.
    tiles: np.ndarray


@runtime_checkable
class TileSource(Protocol):
    """Where tiles come from: local h5, Hub streaming, an image folder or parquet files."""

    def slide_ids(self) -> list[str]:
        """Slide ids this source holds, sorted."""
        ...

    def coords(self, slide_id: str) -> np.ndarray:
        """(n_tiles, 3) int64 (level, x, y) in canonical order for one slide."""
        ...

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on, in canonical order."""
        ...
