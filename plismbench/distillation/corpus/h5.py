"""h5 files of tiles: (n, H, W, 3) uint8 datasets, 1-d datasets of encoded images, or both.

Every qualifying dataset of every file is a run of tiles, in file then dataset-path order;
when a file holds a dataset named ``image_column`` only that one is used. A single
(H, W, 3) dataset is one tile (the PLISM layout, which is recognised and flagged).
Uncompressed contiguous arrays are read with ``os.preadv`` at computed offsets (no h5py
lock, so reader threads run in parallel); other layouts go through h5py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.catalogue import plism_slide_ids
from plismbench.distillation.corpus.base import (
    HandleCache,
    TileCorpus,
    as_tile,
    decode_tile,
    shard_listing,
)
from plismbench.distillation.corpus.tar import _Fd
from plismbench.errors import InputError

__all__ = ["H5Corpus"]

_ARRAY, _SINGLE, _ENCODED = 0, 1, 2


def _kind(ds: Any) -> int | None:
    """How a dataset holds tiles, or None when it holds none."""
    shape, dtype = tuple(ds.shape), ds.dtype
    if dtype == np.uint8 and len(shape) == 4 and shape[3] == 3:
        return _ARRAY
    if dtype == np.uint8 and len(shape) == 3 and shape[2] == 3:
        return _SINGLE
    if len(shape) != 1:
        return None
    import h5py

    base = h5py.check_vlen_dtype(dtype)
    if isinstance(base, np.dtype) and base.kind in "iu" and base.itemsize == 1:
        return _ENCODED  # variable-length uint8 / int8: encoded image bytes
    if dtype.kind == "V" and not dtype.names:
        return _ENCODED  # opaque blobs
    return None  # strings (names, labels), numbers


class _H5:
    """An open h5 file and the datasets looked up in it (a path lookup costs ~0.1 ms)."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self._datasets: dict[str, Any] = {}

    def dataset(self, name: str) -> Any:
        ds = self._datasets.get(name)
        if ds is None:
            if len(self._datasets) >= 4096:  # one-tile datasets (PLISM's layout): stay bounded
                self._datasets.clear()
            ds = self._datasets[name] = self.file[name]
        return ds

    def close(self) -> None:
        self._datasets.clear()
        self.file.close()


class H5Corpus(TileCorpus):
    """The tiles of h5 files (one file or a folder of them)."""

    kind = "h5"

    def __init__(
        self, files: list[Path], root: Path, label: str, image_column: str = "image"
    ) -> None:
        super().__init__(label)
        self.files, self.root = files, root
        self._handles = HandleCache(max_open=16)
        seg_file: list[int] = []
        seg_kind: list[int] = []
        seg_offset: list[int] = []
        counts: list[int] = []
        shapes: list[tuple[int, ...]] = []
        self._names: list[str] = []
        plism = set(plism_slide_ids())
        for i, f in enumerate(files):
            found = self._datasets(i, image_column)
            if f.stem in plism and any(t[1] == _SINGLE for t in found):
                self.is_plism = True
            for name, kind, n, offset, shape in found:
                shapes.append(shape or (0, 0, 0))
                seg_file.append(i)
                seg_kind.append(kind)
                seg_offset.append(offset)
                counts.append(n)
                self._names.append(name)
        self._seg_file = np.asarray(seg_file, np.int32)
        self._seg_kind = np.asarray(seg_kind, np.int8)
        self._seg_offset = np.asarray(seg_offset, np.int64)
        self._seg_shape = np.asarray(shapes, np.int64).reshape(-1, 3)
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._handles.clear()  # h5py handles must not cross a fork
        if len(self) == 0:
            raise InputError(
                f"{label}: no tiles found (no (n, H, W, 3) uint8 or encoded-image dataset)"
            )

    def _open(self, i: int) -> _H5:
        import h5py

        def opener() -> _H5:
            try:
                return _H5(h5py.File(self.files[i], "r"))
            except OSError as exc:
                raise InputError(
                    f"{self.files[i]}: cannot read h5 file (truncated or corrupt?): {exc}"
                ) from exc

        return self._handles.get(("h5", i), opener)  # type: ignore[no-any-return]

    def _file(self, i: int) -> Any:
        return self._open(i).file

    def _datasets(self, i: int, image_column: str) -> list[tuple[Any, ...]]:
        """(path, kind, tiles, byte offset or -1, tile shape) of the tile datasets of file i."""
        import h5py

        handle = self._file(i)
        named = handle.get(image_column)
        if isinstance(named, h5py.Dataset) and _kind(named) is not None:
            items = [(image_column, named)]
        else:
            items = []

            def collect(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    items.append((name, obj))

            handle.visititems(collect)
            items.sort(key=lambda t: t[0])
        found = []
        for name, ds in items:
            kind = _kind(ds)
            if kind is None:
                continue
            offset = -1
            if kind != _ENCODED and ds.chunks is None and ds.compression is None:
                got = ds.id.get_offset()
                offset = -1 if got is None else int(got)
            n = 1 if kind == _SINGLE else int(ds.shape[0])
            found.append((name, kind, n, offset, tuple(ds.shape[-3:]) if kind != _ENCODED else ()))
        return found

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Read the tiles of ``indices`` (direct reads for contiguous uint8 arrays)."""
        idx = self._check(indices)
        segs = np.searchsorted(self._starts, idx, side="right") - 1
        out = []
        for i, s in zip(idx, segs, strict=True):
            f = int(self._seg_file[s])
            row = int(i - self._starts[s])
            where, name = str(self.files[f]), f"{self._names[s]}[{row}]"
            try:
                out.append(self._read_one(int(s), f, row, where, name))
            except (OSError, RuntimeError, ValueError) as exc:
                raise InputError(f"{where}: cannot read tile {name!r}: {exc}") from exc
        return out

    def _read_one(self, s: int, f: int, row: int, where: str, name: str) -> np.ndarray:
        kind, offset = int(self._seg_kind[s]), int(self._seg_offset[s])
        if offset < 0 or kind == _ENCODED:  # through h5py
            ds = self._open(f).dataset(self._names[s])
            if kind == _ENCODED:
                data = ds[row]
                data = data.tobytes() if isinstance(data, np.ndarray | np.void) else data
                return decode_tile(bytes(data), where=where, name=name)
            tile = ds[()] if kind == _SINGLE else ds[row]
            return as_tile(np.asarray(tile), where=where, name=name)
        tile = np.empty(tuple(self._seg_shape[s]), np.uint8)
        nbytes = tile.nbytes
        fd = self._handles.get(("raw", f), lambda: _Fd(self.files[f])).fd
        got = os.preadv(fd, [memoryview(tile).cast("B")], offset + row * nbytes)  # type: ignore[arg-type]
        if got != nbytes:
            raise OSError(f"read {got} of {nbytes} bytes")
        return tile

    def _listing(self) -> list[Any]:
        return shard_listing(self.files, self.root)
