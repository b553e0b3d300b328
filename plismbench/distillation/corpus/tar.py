"""Webdataset-style tar shards: members grouped by key, one image member per sample.

A sample is the members sharing a key (the member's path up to the first dot of its
file name, as webdataset groups them); its first member with an image extension is the
tile. Each shard's headers are scanned once, the data offset and size of every tile are
kept (and cached on disk, see `.index_cache`), and a tile is then one ``pread``.
"""

from __future__ import annotations

import functools
import os
import tarfile
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from plismbench.distillation.corpus.base import (
    IMAGE_SUFFIXES,
    HandleCache,
    ShardedBytesCorpus,
)
from plismbench.distillation.corpus.index_cache import cached_index
from plismbench.errors import InputError

__all__ = ["TarCorpus", "index_tar"]

_IMAGE_EXT = {s.lstrip(".") for s in IMAGE_SUFFIXES}
_ZERO = bytes(512)


class _Unusual(Exception):
    """A header the fast scan leaves to `tarfile` (pax, GNU long names, base-256)."""


def _scan_headers(path: Path) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of the regular members of a plain ustar/v7 tar.

    One ``pread`` of 512 bytes per member and no object per member: several times faster
    than `tarfile`, which `index_tar()` falls back to on anything unusual.
    """
    with open(path, "rb", buffering=0) as fh:
        fd, pos = fh.fileno(), 0
        head = os.pread(fd, 2, 0)
        if head == b"\x1f\x8b":
            raise tarfile.ReadError("gzip-compressed")
        while True:
            hdr = os.pread(fd, 512, pos)
            if len(hdr) < 512 or hdr == _ZERO:
                return
            try:
                checksum = int(hdr[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            except ValueError:
                raise tarfile.ReadError(f"bad header at byte {pos}") from None
            if checksum != sum(hdr[:148]) + 256 + sum(hdr[156:]):
                raise tarfile.ReadError(f"bad header checksum at byte {pos}")
            kind = hdr[156:157]
            if kind in (b"x", b"g", b"L", b"K", b"S") or hdr[124] & 0x80:
                raise _Unusual
            size = int(hdr[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            if kind in (b"0", b"\0", b"7"):
                name = hdr[:100].split(b"\0", 1)[0]
                prefix = hdr[345:500].split(b"\0", 1)[0] if hdr[257:262] == b"ustar" else b""
                full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
                yield full, pos + 512, size
            pos += 512 + (size + 511) // 512 * 512


def _scan_tarfile(path: Path) -> Iterator[tuple[str, int, int]]:
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, member.offset_data, member.size


def index_tar(path: Path) -> dict[str, np.ndarray]:
    """Data offsets and sizes of the image member of every sample of a tar shard."""
    try:
        try:
            return _samples(_scan_headers(path))
        except _Unusual:
            return _samples(_scan_tarfile(path))
    except tarfile.ReadError as exc:
        raise InputError(
            f"{path}: cannot read tar shard (compressed, truncated or corrupt?): {exc}; "
            "random access needs uncompressed .tar shards"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read tar shard: {exc}") from exc


def _samples(members: Iterator[tuple[str, int, int]]) -> dict[str, np.ndarray]:
    """The first image member of each run of members sharing a webdataset key."""
    offsets, sizes = array("q"), array("q")
    last_key: str | None = None
    for name, offset, size in members:
        folder, _, base = name.rpartition("/")
        stem, dot, ext = base.partition(".")
        if not dot or not stem or ext.lower().rsplit(".", 1)[-1] not in _IMAGE_EXT:
            continue
        key = f"{folder}/{stem}"
        if key == last_key:
            continue  # a second image of the same sample
        last_key = key
        offsets.append(offset)
        sizes.append(size)
    return {"offsets": np.array(offsets, np.int64), "sizes": np.array(sizes, np.int64)}


class _Fd:
    """A raw read-only descriptor with ``close()``, for the handle cache."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)


class TarCorpus(ShardedBytesCorpus):
    """The samples of uncompressed tar shards, in shard then member order."""

    kind = "tar"

    def __init__(self, files: list[Path], root: Path, label: str) -> None:
        super().__init__(label)
        self.files, self.root = files, root
        self._handles = HandleCache()
        def index(f: Path) -> dict[str, np.ndarray]:
            return cached_index(f, "tar-v2", functools.partial(index_tar, f))

        # threads overlap the reads of cold shards (a scan reads the whole shard from disk)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(files)))) as pool:
            parts = list(pool.map(index, files))
        counts = [len(p["offsets"]) for p in parts]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._offsets = np.concatenate([p["offsets"] for p in parts]).astype(np.int64)
        self._sizes = np.concatenate([p["sizes"] for p in parts]).astype(np.int64)
        if len(self) == 0:
            raise InputError(
                f"{label}: no tiles found (no {'/'.join(sorted(_IMAGE_EXT))} member in the tar)"
            )

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _bytes(self, indices: Sequence[int] | np.ndarray) -> list[tuple[bytes, str, str]]:
        """(image bytes, shard, name) of ``indices``: one ``pread`` each at its offset."""
        idx = self._check(indices)
        shards = np.searchsorted(self._starts, idx, side="right") - 1
        out = []
        for i, s in zip(idx, shards, strict=True):
            path = self.files[int(s)]
            fd = self._handles.get(int(s), functools.partial(_Fd, path)).fd
            size, offset = int(self._sizes[i]), int(self._offsets[i])
            data = os.pread(fd, size, offset)
            name = f"sample {int(i - self._starts[s])}"
            if len(data) != size:
                raise InputError(f"{path}: {name} is truncated (shard changed since indexing?)")
            out.append((data, str(path), name))
        return out
