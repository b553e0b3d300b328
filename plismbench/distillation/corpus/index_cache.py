"""Shard indexes cached on disk, keyed on the shard's name, size and content (not mtime).

Scanning a tar shard's headers costs a pass over the file; the result (a few numpy arrays)
is kept in ``$PLISMBENCH_CORPUS_CACHE`` (default ``~/.cache/plismbench/corpus-index``) so
that every later run, and every rank, opens the corpus at once. The key covers the
resolved path, the size and the first and last 64 KiB of the shard.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from plismbench.utils.io import save_npz
from plismbench.utils.locks import Claim

__all__ = ["cache_dir", "cached_index", "shard_key"]

_EDGE = 64 << 10
#: Seconds to wait for another process building the same shard index.
WAIT_S = 600.0


def cache_dir() -> Path:
    """Where shard indexes are kept."""
    env = os.environ.get("PLISMBENCH_CORPUS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "plismbench" / "corpus-index"


def shard_key(path: Path, version: str) -> str:
    """Digest of the resolved path, size, first and last 64 KiB of ``path`` and ``version``."""
    h = hashlib.blake2b(digest_size=20)
    size = path.stat().st_size
    h.update(f"{path.resolve()}\0{size}\0{version}\0".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE))
        if size > _EDGE:
            fh.seek(max(_EDGE, size - _EDGE))
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def _load(file: Path) -> dict[str, np.ndarray] | None:
    if file.is_file():
        with (
            contextlib.suppress(OSError, ValueError, zipfile.BadZipFile),
            np.load(file, allow_pickle=False) as data,
        ):
            return {k: data[k] for k in data.files}
    return None  # absent or damaged: rebuilt


def cached_index(
    path: Path, version: str, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The index of ``path`` from the cache, else ``build()`` it and cache it (best effort).

    Processes sharing the cache (the ranks of a node, nodes on a shared file system) build
    each shard's index once: the first claims a lock file, the others wait for its result
    (at most ``WAIT_S``, then build it themselves).
    """
    file = cache_dir() / f"{shard_key(path, version)}.npz"
    lock = file.with_suffix(".lock")
    deadline = time.monotonic() + WAIT_S
    while (index := _load(file)) is None:
        try:
            with Claim(lock) as mine:
                if mine:
                    index = _load(file) or build()  # it may have landed meanwhile
                    with contextlib.suppress(OSError):
                        save_npz(file, **index)
                    return index
        except OSError:  # the cache folder cannot be written: build, do not cache
            return build()
        if time.monotonic() > deadline:
            return build()
        time.sleep(0.1)  # another process is building it
    return index
