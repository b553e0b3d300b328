"""The tile-corpus interface: random access, by index, to the tiles of any corpus.

A corpus is indexed once when it is opened; the index is a few numpy arrays (never one
Python object per tile), so it scales to tens of millions of tiles and is shared
copy-on-write by forked DataLoader workers. Open file handles are cached per process and
per thread, so reading a tile never opens its shard again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.formats import IMAGE_SUFFIXES as IMAGE_SUFFIXES  # the corpora import it here
from plismbench.data.sources import decode_image
from plismbench.errors import InputError
from plismbench.utils.handles import HandleCache as HandleCache  # the corpora import it here

_MAX_OPEN = 32


def decode_tile(data: bytes | str | os.PathLike[str], *, where: str, name: str) -> np.ndarray:
    """Decode image bytes or a file into a uint8 (H, W, 3) RGB tile."""
    return as_tile(decode_image(data, where=where, name=name), where=where, name=name)


def as_tile(tile: np.ndarray, *, where: str, name: str) -> np.ndarray:
    """Check that ``tile`` is a uint8 (H, W, 3) image."""
    if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3 or 0 in tile.shape:
        raise InputError(
            f"{where}: tile {name!r} is {tile.dtype} {tile.shape}, not uint8 (H, W, 3)"
        )
    return tile


def list_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` with one of ``suffixes`` (recursive, hidden skipped, sorted)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


class TileCorpus:
    """Tiles ``0 .. len - 1`` of a corpus, read by index as uint8 (H, W, 3) RGB arrays."""

    #: The corpus format: folder, parquet, tar, h5 or plism.
    kind: str = ""
    #: True when the corpus is the PLISM benchmark itself (its evaluation tiles).
    is_plism: bool = False

    def __init__(self, path: str) -> None:
        self.path = path

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """The tiles at ``indices``, in that order (duplicates allowed)."""
        raise NotImplementedError

    def read_encoded(self, indices: Sequence[int] | np.ndarray) -> list[bytes | None]:
        """The stored image bytes of ``indices`` where the corpus holds encoded images."""
        return [None] * len(self._check(indices))

    def _listing(self) -> list[Any]:
        """What the digest covers (buffers): the corpus's file list (names and sizes)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Kind, path, number of tiles and a digest of the file list, for the run's records."""
        h = hashlib.blake2b(digest_size=16)
        for part in self._listing():
            h.update(part)  # buffers, hashed in place (a folder's names can be GBs)
        return {
            "kind": self.kind,
            "path": self.path,
            "n_tiles": len(self),
            "digest": h.hexdigest(),
            "is_plism": self.is_plism,
        }

    def _check(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"{self.path}: tile index {bad} out of range [0, {n})")
        return idx


class ShardedBytesCorpus(TileCorpus):
    """A corpus of encoded images in shard files (parquet, tar): subclasses give ``_bytes``."""

    files: list[Path]
    root: Path

    def _bytes(self, indices: Sequence[int] | np.ndarray) -> list[tuple[bytes, str, str]]:
        """``(image bytes, file, name)`` of each index, in order."""
        raise NotImplementedError

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Read and decode the tiles of ``indices``."""
        return [decode_tile(d, where=w, name=n) for d, w, n in self._bytes(indices)]

    def read_encoded(self, indices: Sequence[int] | np.ndarray) -> list[bytes | None]:
        """The stored image bytes of ``indices``."""
        return [d for d, _, _ in self._bytes(indices)]

    def _listing(self) -> list[Any]:
        return shard_listing(self.files, self.root)


def shard_listing(files: Sequence[Path], root: Path) -> list[Any]:
    """Names (relative to ``root``) and sizes of shard files, one per line."""
    lines = []
    for f in files:
        rel = f.relative_to(root) if f != root else Path(f.name)
        lines.append(f"{rel.as_posix()}\t{f.stat().st_size}")
    return ["\n".join(lines).encode()]
