"""What every tile source shares: slide listing, canonical order, tile-id checks, handles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from plismbench.data.tiles import canonical_order, check_same_tiles
from plismbench.errors import InputError
from plismbench.utils.handles import HandleCache

#: Open file handles kept per process and thread.
_MAX_OPEN = 16


class _Source:
    """Slide listing, canonical order and tile-id consistency shared by all sources."""

    def __init__(self, slides: Sequence[str] | None) -> None:
        self._only = sorted(set(slides)) if slides else None
        self._slides: list[str] | None = None
        self._coords: dict[str, np.ndarray] = {}
        self._names: dict[str, list[str]] = {}
        self._handles = HandleCache(_MAX_OPEN)

    # -- to implement -------------------------------------------------------------------------
    def _label(self) -> str:
        """Where the data is, for errors."""
        raise NotImplementedError

    def _list_slides(self) -> list[str]:
        raise NotImplementedError

    def _where(self, slide_id: str) -> str:
        """The file or folder holding one slide, for errors."""
        raise NotImplementedError

    def _tile_names(self, slide_id: str) -> list[str]:
        """Tile ids of one slide in storage order (and remember where each one is)."""
        raise NotImplementedError

    def _reorder(self, slide_id: str, order: np.ndarray) -> None:
        """Remember the canonical order (storage positions) of a slide."""

    # -- shared -------------------------------------------------------------------------------
    def _handle(self, key: Any, opener: Any) -> Any:
        """A cache of open handles per process and per thread.

        Never shared across a fork (h5py handles are not fork-safe), nor across the
        prefetch threads: a pyarrow ``ParquetFile`` is not safe for concurrent reads, and
        an eviction must never close a handle that another thread is reading.
        """
        return self._handles.get(key, opener)

    def slide_ids(self) -> list[str]:
        """Slide ids this source holds (restricted to ``slides`` when given), sorted."""
        if self._slides is None:
            found = self._list_slides()
            if self._only is not None:
                have = set(found)
                missing = [s for s in self._only if s not in have]
                if missing:
                    raise InputError(
                        f"{self._label()}: slide {missing[0]!r} not found"
                        + (f" ({len(missing)} slides missing)" if len(missing) > 1 else "")
                    )
                found = list(self._only)
            if not found:
                raise InputError(f"{self._label()}: no slides found")
            self._slides = sorted(found)
        return list(self._slides)

    def _check_known(self, slide_id: str) -> None:
        if slide_id not in self.slide_ids():
            raise InputError(f"{self._label()}: slide {slide_id!r} not found")

    def coords(self, slide_id: str) -> np.ndarray:
        """(n_tiles, 3) int64 (level, x, y) in canonical order; same tiles in every slide."""
        if slide_id not in self._coords:
            self._check_known(slide_id)
            names = self._tile_names(slide_id)
            where = self._where(slide_id)
            if not names:
                raise InputError(f"{where}: no tiles in slide {slide_id!r}")
            order, coords = canonical_order(names, where=where)
            ref = self.slide_ids()[0]
            if slide_id != ref:
                check_same_tiles(self.coords(ref), self._where(ref), coords, where)
            self._reorder(slide_id, order)
            self._names[slide_id] = [names[i] for i in order]
            coords.setflags(write=False)
            self._coords[slide_id] = coords
        return self._coords[slide_id]

    def _batches(
        self, slide_id: str, batch_size: int, start: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        coords = self.coords(slide_id)
        for b in range(max(start, 0), len(coords), batch_size):
            yield b, coords[b : b + batch_size]


def _stack(tiles: list[np.ndarray]) -> np.ndarray:
    return np.stack(tiles) if tiles else np.empty((0, 0, 0, 3), np.uint8)
