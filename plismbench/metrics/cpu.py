"""The CPU backend: float32 BLAS GEMMs in fixed blocks, each single-threaded, spread over
a persistent thread pool, and compared with their bands while still in cache."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from plismbench.metrics.backend import Backend, CrossScan, T
from plismbench.metrics.dense import Found, joined, sparse_block, torch_block
from plismbench.metrics.survivors import RowThresholds

#: Rows per GEMM block on CPU; the blocks run single-threaded on a persistent pool.
GEMM_ROWS = 512
#: Rows per strip of the intra stage's triangle (each strip also computes its R x R
#: diagonal square in full: smaller strips waste less, down to GEMM efficiency).
INTRA_ROWS = 256
#: Rows per chunk of float64 row dot products (keeps them in cache).
DOT_ROWS = 256
#: Rows per chunk of the match table, and the largest table built (bytes).
MATCH_ROWS = 16
MATCH_TABLE_BYTES = 1 << 30
#: Similarities compared at once inside a CPU block (keeps them in cache).
SUB_ELEMENTS = 1 << 18
#: Above this fraction of all row pairs surviving, the intra stage counts full blocks.
SURVIVOR_FRACTION = 0.25
#: Whole slide pairs run concurrently on CPU while their similarity blocks fit in this.
PAIR_PARALLEL_BYTES = 1 << 30


_SCRATCH = threading.local()


def scratch(shape: tuple[int, int]) -> np.ndarray:
    """A float32 array of ``shape`` reused by this thread (the GEMM blocks of every pair:
    fresh multi-MB arrays pay page faults, and on some kernels huge-page compaction,
    each time)."""
    size = shape[0] * shape[1]
    buf: np.ndarray | None = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=np.float32)
        _SCRATCH.buf = buf
    return buf[:size].reshape(shape)


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One persistent pool per thread count (a pool per GEMM cost more than small GEMMs)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plismbench-gemm")


class NumpyBackend(Backend):
    """CPU: float32 BLAS GEMM in fixed ``gemm_rows``-row blocks, each single-threaded,
    spread over a persistent thread pool; each block is compared with its thresholds
    while still in cache. Results do not depend on ``--workers``.
    """

    name = "cpu"
    gemm_rows = GEMM_ROWS
    block_rows = 2 * GEMM_ROWS

    def __init__(self) -> None:
        self.workers = os.cpu_count() or 1
        self._single_blas = False

    def put(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, fn: Any, n_blocks: int) -> None:
        if self.workers == 1 or n_blocks == 1:
            with self._one_blas_thread():
                for b in range(n_blocks):
                    fn(b)
            return
        with self._one_blas_thread():
            pending = [_pool(self.workers).submit(fn, b) for b in range(1, n_blocks)]
            fn(0)  # the calling thread takes a block too
            for f in pending:
                f.result()

    @contextlib.contextmanager
    def _one_blas_thread(self) -> Iterator[None]:
        if self._single_blas:
            yield
            return
        with _blas_controller().limit(limits=1, user_api="blas"):
            yield

    def map_items(self, fn: Callable[[T], None], items: Sequence[T], n_tiles: int) -> None:
        """Whole pairs on the worker threads, each single-threaded, when their N x N
        blocks fit in ``PAIR_PARALLEL_BYTES`` together: small pairs waste less time in
        the serial Python around each GEMM. Otherwise pairs run in order, each split
        over the threads."""
        workers = self.workers
        if workers == 1 or len(items) < 2 or 4 * n_tiles * n_tiles * workers > PAIR_PARALLEL_BYTES:
            for item in items:
                fn(item)
            return
        self.workers, self._single_blas = 1, True
        try:
            with _blas_controller().limit(limits=1, user_api="blas"):
                futures = [_pool(workers).submit(fn, item) for item in items]
                try:
                    for f in futures:
                        f.result()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    wait(futures)  # nothing keeps running after an error or Ctrl-C
                    raise
        finally:
            self.workers, self._single_blas = workers, False

    def gram(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], y.shape[0]), dtype=np.float32)
        yt, rows = y.T, self._rows(x.shape[0])

        def block(b: int) -> None:
            r0 = b * rows
            np.matmul(x[r0 : r0 + rows], yt, out=out[r0 : r0 + rows])

        self._run(block, -(-x.shape[0] // rows))
        return out

    def intra_scan(
        self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Strips of the upper triangle of ``x @ x.T`` (each product serves both rows);
        each worker keeps the similarities at or above the query's lowest threshold, in
        query order, and places them among the row's thresholds itself. Dense data (more
        than `SURVIVOR_FRACTION` of all pairs kept) is counted by full blocks."""
        n = x.shape[0]
        floor = lo.min(axis=1)
        table = RowThresholds(lo, hi)
        budget = SURVIVOR_FRACTION * n * n
        kept = [0]
        lock = threading.Lock()
        share = -(-n // (4 * max(1, self.workers)))
        rows = max(16, min(INTRA_ROWS, -(-share // 16) * 16))

        def strip(b: int) -> None:
            if kept[0] > budget:
                return
            r0 = b * rows
            r1 = min(r0 + rows, n)
            s = np.matmul(x[r0:r1], x[r0:].T, out=scratch((r1 - r0, n - r0)))  # columns r0..
            s[np.arange(r1 - r0), np.arange(r1 - r0)] = -np.inf  # the query, by index
            own = np.flatnonzero(s >= floor[r0:r1, None])  # queries in the strip
            t = s[:, r1 - r0 :] >= floor[None, r1:]  # queries below the strip ...
            below = np.flatnonzero(t.T.copy())  # ... in query order
            with lock:
                kept[0] += len(own) + len(below)
                if kept[0] > budget:
                    return
            q1, c1 = np.divmod(own, n - r0)
            q2, c2 = np.divmod(below, r1 - r0)
            v = s.ravel()
            table.place(
                np.concatenate([q1 + r0, q2 + r1]),
                np.concatenate([c1 + r0, c2 + r0]),
                np.concatenate([v[own], v[c2 * (n - r0) + (r1 - r0) + q2]]),
            )

        self._run(strip, -(-n // rows))
        if kept[0] > budget:
            return self._intra_blocks(x, lo, hi)
        return table.counts()

    def _intra_blocks(
        self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Full row blocks, each counted sparsely or by sorting (dense data)."""
        n = lo.shape[0]
        out = np.empty(lo.shape, dtype=np.int64)
        rows = self._rows(n)
        found: list[Found] = [[] for _ in range(-(-n // rows))]
        xt = x.T

        def block(b: int) -> None:
            r0 = b * rows
            r1 = min(r0 + rows, n)
            s = np.matmul(x[r0:r1], xt)
            s[np.arange(r1 - r0), np.arange(r0, r1)] = -np.inf  # the query, by index
            counts = sparse_block(s, r0, lo[r0:r1], hi[r0:r1], found[b])
            if counts is None:
                counts = torch_block(self.to_torch(s), r0, lo[r0:r1], hi[r0:r1], found[b])
            out[r0:r1] = counts

        self._run(block, len(found))
        return out, joined([f for part in found for f in part])

    def row_dots(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """float32 products summed in float64, in cache-sized row chunks on the workers."""
        return self.matches(x, y)[0]

    def matches(self, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Row chunks of float32 products, widened to float64 and summed by a float64
        GEMV (NumPy's casting reduction was 1.4x slower)."""
        n, d = x.shape
        y3 = ys.reshape(-1, n, d)
        out = np.empty((y3.shape[0], n), dtype=np.float64)
        rows = DOT_ROWS
        ones = np.ones(d)

        def chunk(b: int) -> None:
            r0 = b * rows
            r1 = min(r0 + rows, n)
            prod = np.empty((r1 - r0, d), dtype=np.float32)
            wide = np.empty((r1 - r0, d), dtype=np.float64)
            for p in range(y3.shape[0]):
                np.multiply(y3[p, r0:r1], x[r0:r1], out=prod)
                wide[...] = prod
                np.matmul(wide, ones, out=out[p, r0:r1])

        self._run(chunk, -(-n // rows))
        return out

    def match_table(self, stacked: np.ndarray, n: int) -> np.ndarray | None:
        """Every pair's matches at once: per row r, the float64 Gram matrix of the S
        slides' r-th rows (exact float32 products, float64 sums), one single-threaded
        GEMM per row (so the bits do not depend on the thread count). 4,095 pairs of 460
        rows take 0.1 s instead of 0.6 s row by row; None above `MATCH_TABLE_BYTES`."""
        n_slides = stacked.shape[0] // n
        if n * n_slides * n_slides * 8 > MATCH_TABLE_BYTES:
            return None
        x3 = stacked.reshape(n_slides, n, -1)
        out = np.empty((n, n_slides, n_slides), dtype=np.float64)
        rows = MATCH_ROWS

        def chunk(b: int) -> None:
            r0 = b * rows
            r1 = min(r0 + rows, n)
            blk = x3[:, r0:r1].transpose(1, 0, 2).astype(np.float64)  # (rows, S, d)
            np.matmul(blk, blk.transpose(0, 2, 1), out=out[r0:r1])

        self._run(chunk, -(-n // rows))
        return out

    def pair_dots(self, x: np.ndarray, i: np.ndarray, y: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Exact float32 products summed in float64, gathered in cache-sized chunks."""
        out = np.empty(len(i), dtype=np.float64)
        for c0 in range(0, len(i), DOT_ROWS):
            sl = slice(c0, c0 + DOT_ROWS)
            out[sl] = np.einsum("ij,ij->i", x[i[sl]], y[j[sl]], dtype=np.float64)
        return out

    def _rows(self, n: int) -> int:
        """Rows per block: at most ``gemm_rows``, and enough blocks for every worker."""
        share = -(-n // max(1, self.workers))
        return max(16, min(self.gemm_rows, -(-share // 16) * 16))

    def cross_scan(
        self, x: np.ndarray, ys: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> CrossScan:
        """Block by block, never a whole N x N: ``ys`` rows times ``x.T``, so every GEMM
        shares its ``x`` operand, which stays in cache (as fast as one wide GEMM), while
        each output block is small enough to be scanned in cache. Only the few
        similarities at or above a row's or a column's ``lo`` are kept (two comparisons
        and one flat ``nonzero`` per sub-block), then counted or returned as band members."""
        n, total = x.shape[0], ys.shape[0]
        k = total // n
        xt, rows = x.T, self._rows(n)
        blocks = [(p, r0) for p in range(k) for r0 in range(0, n, rows)]
        kept: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in blocks]
        sub_rows = max(1, min(rows, SUB_ELEMENTS // n))

        def block(b: int) -> None:
            p, r0 = blocks[b]
            r1 = min(r0 + rows, n)
            t = np.matmul(ys[p * n + r0 : p * n + r1], xt, out=scratch((r1 - r0, n)))
            mask = np.empty((min(sub_rows, r1 - r0), n), dtype=bool)
            lo_a = lo[p][None, :]  # queries a_i (columns of t)
            for s0 in range(r0, r1, sub_rows):  # t[j - r0, i] = s_p[i, j]
                s1 = min(s0 + sub_rows, r1)
                sub, ge = t[s0 - r0 : s1 - r0], mask[: s1 - s0]
                np.greater_equal(sub, lo_a, out=ge)
                ge |= sub >= lo[p, s0:s1, None]  # queries b_j (rows of t)
                flat = np.flatnonzero(ge)
                j, i = np.divmod(flat, n)
                kept[b].append((i, j + (p * n + s0), sub.ravel().take(flat)))

        self._run(block, len(blocks))
        found = [q for block_parts in kept for q in block_parts]
        i, pj, v = (np.concatenate(a) for a in zip(*found, strict=True))
        part = pj // n
        row_key = part * n + i  # (p, i): queries a_i; pj = (p, j): queries b_j
        lo_f, hi_f = lo.ravel(), hi.ravel()
        # the match itself (i == j) is excluded by index; it is below hi by the band's bound
        up_r, up_c = v >= hi_f[row_key], v >= hi_f[pj]
        off = row_key != pj
        band_r = np.flatnonzero((v >= lo_f[row_key]) & ~up_r & off)
        band_c = np.flatnonzero((v >= lo_f[pj]) & ~up_c & off)
        return CrossScan(
            np.bincount(row_key[up_r], minlength=total).reshape(k, n),
            np.bincount(pj[up_c], minlength=total).reshape(k, n),
            (part[band_r], i[band_r], pj[band_r] - part[band_r] * n),
            (part[band_c], i[band_c], pj[band_c] - part[band_c] * n),
        )

    def to_torch(self, x: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(x)

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        previous = self.workers
        self.workers = n or previous
        try:
            with super().threads(n):
                yield
        finally:
            self.workers = previous


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
