"""The resumable intermediate results of one evaluation.

``<output>/.cache/`` holds one file per finished *batch* of slide pairs (their match
similarities and cross counts, one ``.npy``; a batch is about a second of CPU work, since
creating thousands of small files cost more than small pairs) and one per finished slide
(its intra counts), each written atomically: a batch is on disk whole or not at all.
``key.json`` names the inputs they came from: the *content* of every features file (a
blake2b digest, computed once per run), never its path or modification time. A
different key wipes the cache, so an input edited in place is never reused, while a
copied results folder (same content) still is. Ranks are exact, so they do not depend
on the device or the GEMM blocking; nor on k, so changing ``--top-k`` reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from plismbench.metrics.ranks import CrossCounts
from plismbench.store.features import FeatureStore
from plismbench.utils.io import save_npy, write_json

#: Bump when the meaning of cached files changes.
CACHE_FORMAT = 4


def content_digests(store: FeatureStore) -> dict[str, str]:
    """blake2b of each features file, by slide id (about a second per GB and core; files
    are hashed on several threads, since hashlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from plismbench.utils.hashing import file_digest

    threads = max(1, min(4, os.cpu_count() or 1, len(store.slides)))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        digests = list(pool.map(file_digest, [s.path for s in store.slides]))
    return {s.slide_id: d for s, d in zip(store.slides, digests, strict=True)}


def cache_key(
    digests: dict[str, str], rows: np.ndarray, device: str, pairs_per_file: int = 1
) -> str:
    """Digest of everything that changes a result or the cache's layout: each file's
    content, the rows, the device type (float64 cosines may differ in their last bit
    between devices) and the pairs per batch file."""
    payload = {
        "format": CACHE_FORMAT,
        "device": device,
        "pairs_per_file": pairs_per_file,
        "rows": hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest(),
        "slides": sorted(digests.items()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PairCache:
    """Per-pair and per-slide intermediate files under one directory."""

    def __init__(self, root: Path, key: str, *, reset: bool = False) -> None:
        self.root = root
        key_file = root / "key.json"
        stale = reset or not key_file.is_file() or _read_key(key_file) != key
        if stale and root.exists():
            shutil.rmtree(root)
        (root / "pairs").mkdir(parents=True, exist_ok=True)
        (root / "intra").mkdir(parents=True, exist_ok=True)
        if stale:
            write_json(key_file, {"key": key, "format": CACHE_FORMAT})

    def _batch(self, b: int) -> Path:
        return self.root / "pairs" / f"{b:05d}.npy"

    def _intra(self, a: int) -> Path:
        return self.root / "intra" / f"{a:04d}.npy"

    def has_batch(self, b: int) -> bool:
        return self._batch(b).is_file()

    def save_batch(self, b: int, counts: list[CrossCounts]) -> None:
        """One (k, 3, N) float64 array: per pair the matches, then both counts (exact)."""
        _save_quick(
            self._batch(b), np.stack([np.stack([c.match, c.a_to_b, c.b_to_a]) for c in counts])
        )

    def load_batch(self, b: int) -> list[CrossCounts]:
        data = np.load(self._batch(b), allow_pickle=False)
        return [
            CrossCounts(match=p[0], a_to_b=p[1].astype(np.int64), b_to_a=p[2].astype(np.int64))
            for p in data
        ]

    def has_intra(self, a: int) -> bool:
        return self._intra(a).is_file()

    def save_intra(self, a: int, counts: np.ndarray) -> None:
        save_npy(self._intra(a), counts.astype(np.int32))

    def load_intra(self, a: int) -> np.ndarray:
        return np.load(self._intra(a)).astype(np.int64)


def _save_quick(path: Path, array: np.ndarray) -> None:
    """Atomic like `save_npy()` with one file creation instead of
    two (thousands of small pair files: creating files is what costs on some file
    systems). The temporary name is unique per process and thread."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _read_key(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["key"])
    except (OSError, ValueError, KeyError):
        return None
