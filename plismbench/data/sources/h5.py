"""Local PLISM h5 files, one root dataset per tile, read with ``os.preadv``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.base import TileBatch
from plismbench.data.sources.base import _Source
from plismbench.errors import InputError


class H5Source(_Source):
    """``{slide_id}.h5`` files with one root dataset per tile, ``tile_{level}_{x}_{y}``."""

    def __init__(self, download_dir: str | os.PathLike[str], slides: Sequence[str] | None = None):
        super().__init__(slides)
        self.root = Path(download_dir)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: download folder not found")
        self._layouts: dict[str, tuple[tuple[int, ...], np.ndarray]] = {}

    def _label(self) -> str:
        return str(self.root)

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        out: dict[str, Any] = {"type": "h5", "download_dir": str(self.root.resolve())}
        try:  # the dataset commit, when ``download`` fetched these files
            recorded = json.loads((self.root / ".plism-revision.json").read_text("utf-8"))
            out.update(repo_id=recorded["repo_id"], revision=recorded["revision"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return out

    def _list_slides(self) -> list[str]:
        return sorted(
            p.name[: -len(".h5")] for p in self.root.glob("*.h5") if not p.name.startswith(".")
        )

    def path(self, slide_id: str) -> Path:
        """The h5 file of a slide."""
        return self.root / f"{slide_id}.h5"

    def _where(self, slide_id: str) -> str:
        return str(self.path(slide_id))

    def _file(self, slide_id: str) -> Any:
        import h5py

        def opener() -> Any:
            path = self.path(slide_id)
            if not path.exists():
                raise InputError(f"{path}: file not found")
            try:
                return h5py.File(path, "r")
            except OSError as exc:
                raise InputError(
                    f"{path}: cannot read h5 file (truncated or corrupt?): {exc}"
                ) from exc

        return self._handle(slide_id, opener)

    def _tile_names(self, slide_id: str) -> list[str]:
        try:
            return list(self._file(slide_id).keys())
        except (OSError, RuntimeError) as exc:
            raise InputError(f"{self.path(slide_id)}: cannot list tiles: {exc}") from exc

    def _layout(self, slide_id: str) -> tuple[tuple[int, ...], np.ndarray]:
        """Tile shape and, per tile in canonical order, its byte offset in the file.

        Every tile is checked here once (a uint8 (H, W, 3) dataset, one shape for all).
        The offset is -1 where the bytes cannot be read directly (compressed, chunked or
        compact storage); those tiles are read through h5py.
        """
        cached = self._layouts.get(slide_id)
        if cached is not None:
            return cached
        import h5py

        where = str(self.path(slide_id))
        handle = self._file(slide_id)
        names = self._names[slide_id]
        offsets = np.full(len(names), -1, dtype=np.int64)
        shape: tuple[int, ...] | None = None
        for i, name in enumerate(names):
            ds = handle.get(name)
            if not isinstance(ds, h5py.Dataset):
                raise InputError(f"{where}: tile {name!r} is not a dataset")
            if ds.dtype != np.uint8 or len(ds.shape) != 3 or ds.shape[2] != 3:
                raise InputError(
                    f"{where}: tile {name!r} is {ds.dtype} {tuple(ds.shape)}, "
                    "expected uint8 (H, W, 3)"
                )
            if shape is None:
                shape = tuple(ds.shape)
            elif tuple(ds.shape) != shape:
                raise InputError(
                    f"{where}: tile {name!r} has shape {tuple(ds.shape)}, expected {shape} "
                    "like the other tiles"
                )
            if ds.chunks is None and ds.compression is None:
                offset = ds.id.get_offset()
                if offset is not None:
                    offsets[i] = offset
        assert shape is not None
        self._layouts[slide_id] = (shape, offsets)
        return shape, offsets

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on.

        PLISM's tiles are uncompressed contiguous datasets: their bytes are read with
        ``os.preadv`` at offsets found once per slide, which holds neither the GIL nor
        h5py's global lock, so reader threads run in parallel. Other layouts go through
        h5py.
        """
        where = str(self.path(slide_id))
        for b, coords in self._batches(slide_id, batch_size, start):
            shape, offsets = self._layout(slide_id)  # once per slide, then cached
            nbytes = int(np.prod(shape))
            names = self._names[slide_id][b : b + len(coords)]
            out = np.empty((len(names), *shape), np.uint8)
            for i, name in enumerate(names):
                offset = int(offsets[b + i])
                try:
                    if offset >= 0:
                        got = os.preadv(self._fd(slide_id), [memoryview(out[i]).cast("B")], offset)
                        if got != nbytes:
                            raise OSError(f"read {got} of {nbytes} bytes")
                    else:
                        self._file(slide_id)[name].read_direct(out[i])
                except (OSError, RuntimeError) as exc:
                    raise InputError(
                        f"{where}: cannot read tile {name!r} (truncated or corrupt?): {exc}"
                    ) from exc
            yield TileBatch(slide_id=slide_id, start=b, coords=coords, tiles=out)

    def _fd(self, slide_id: str) -> int:
        """A raw read-only descriptor of the slide's file (per process and thread)."""
        fd: _RawFile = self._handle(("raw", slide_id), lambda: _RawFile(self.path(slide_id)))
        return fd.fd


class _RawFile:
    """An ``os.open`` descriptor with ``close()``, for the handle cache."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
