"""A reproducible stream of tiles drawn from any tile source.

Position ``p`` of the stream is tile ``perm_e[p mod N]`` of epoch ``e = p // N``, where
``perm_e`` is a permutation seeded by ``(seed, e)``: step ``s`` of a global batch ``B``
takes positions ``s*B .. s*B+B-1`` whatever the number of ranks, and a resumed run
reads exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from plismbench.data.base import TileSource
from plismbench.errors import InputError

__all__ = ["TileStream"]


class TileStream:
    """Random access to the tiles of every slide of ``source`` in a seeded order."""

    def __init__(self, source: TileSource, seed: int = 0, workers: int = 4):
        self.source = source
        self.seed = seed
        self.slides = source.slide_ids()
        counts = [len(source.coords(s)) for s in self.slides]
        self.offsets = np.cumsum([0, *counts])
        self.size = int(self.offsets[-1])
        if self.size == 0:
            raise InputError("the tile source holds no tiles")
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tiles")

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            rng = np.random.default_rng([self.seed, epoch, 0x7115])
            self._perms[epoch] = rng.permutation(self.size)
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return self._perms[epoch]

    def locate(self, position: int) -> tuple[str, int]:
        """(slide id, canonical row) of the tile at stream ``position``."""
        epoch, k = divmod(position, self.size)
        flat = int(self._perm(epoch)[k])
        s = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return self.slides[s], flat - int(self.offsets[s])

    def _read(self, position: int) -> np.ndarray:
        slide, row = self.locate(position)
        batch = next(iter(self.source.iter_batches(slide, 1, start=row)))
        tile = np.asarray(batch.tiles[0])
        if tile.ndim != 3 or tile.shape[-1] != 3 or tile.dtype != np.uint8:
            raise InputError(f"tile {row} of slide {slide!r} is not a uint8 RGB image")
        return tile

    def fetch(self, positions: Sequence[int]) -> list[Future[np.ndarray]]:
        """Start reading the tiles of ``positions`` in the background."""
        return [self._pool.submit(self._read, p) for p in positions]

    def close(self) -> None:
        """Stop the reading threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
