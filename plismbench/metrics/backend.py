"""Dense similarity kernels on CPU (NumPy BLAS) or CUDA (torch), always in float32.

Every similarity that is compared with a threshold comes out of a float32 GEMM; TF32
and bf16 are never used, because they move similarities by about 1e-3 and so flip
ranks (see docs/metrics.md). Comparisons are made against a band ``[lo, hi)`` around
each float64 threshold: values at or above ``hi`` surely count, values below ``lo``
surely do not, and the few inside are returned for an exact decision
(:mod:`plismbench.metrics.exact`). torch is imported only when needed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from plismbench.errors import InputError
from plismbench.metrics.survivors import RowThresholds

Device = Literal["auto", "cpu", "cuda"]

#: Rows per GEMM block on CPU; the blocks run single-threaded on a persistent pool.
GEMM_ROWS = 512
#: Rows per strip of the intra stage's triangle (each strip also computes its R x R
#: diagonal square in full: smaller strips waste less, down to GEMM efficiency).
INTRA_ROWS = 256
#: Rows per GEMM block on CUDA (large enough to keep the GPU busy).
CUDA_GEMM_ROWS = 4096
#: Rows per chunk of float64 row dot products (keeps them in cache).
DOT_ROWS = 256
#: Rows per chunk of the match table, and the largest table built (bytes).
MATCH_ROWS = 16
MATCH_TABLE_BYTES = 1 << 30
#: Similarities compared at once inside a CPU block (keeps them in cache).
SUB_ELEMENTS = 1 << 18
#: Above this many (value, threshold) comparisons per block, intra counts use a sort.
SPARSE_LIMIT = 1 << 24
#: Above this fraction of all row pairs surviving, the intra stage counts full blocks.
SURVIVOR_FRACTION = 0.25
#: Whole slide pairs run concurrently on CPU while their similarity blocks fit in this.
PAIR_PARALLEL_BYTES = 1 << 30
T = TypeVar("T")


def nonzero2(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask, via the flat indices (NumPy's 2-D path was 10x slower)."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def count_at_thresholds(sims: Any, thresholds: Any) -> Any:
    """Per row r and threshold l: ``#{j : sims[r, j] >= thresholds[r, l]}`` (torch).

    ``sims`` is (R, N), ``thresholds`` (R, m); returns (R, m) int64. Exact: one
    searchsorted per value against the row's sorted thresholds, then suffix sums.
    """
    import torch

    n_rows, m = thresholds.shape
    sorted_thr, order = torch.sort(thresholds, dim=1)
    # bins[r, j] = number of thresholds <= sims[r, j]
    bins = torch.searchsorted(sorted_thr.contiguous(), sims.contiguous(), right=True)
    offsets = torch.arange(n_rows, device=sims.device).mul_(m + 1).unsqueeze(1)
    hist = torch.bincount((bins + offsets).ravel(), minlength=n_rows * (m + 1))
    hist = hist.view(n_rows, m + 1)
    # values with bin >= l + 1 are >= the l-th smallest threshold
    ge_sorted = hist.flip(1).cumsum(1).flip(1)[:, 1:]
    return torch.empty_like(ge_sorted).scatter_(1, order, ge_sorted)


@dataclass
class CrossScan:
    """k slide pairs (a, b_p) sharing slide a, from one GEMM ``a @ [b_0; ...; b_k-1].T``,
    summarised against the band of every row and column (the match itself excluded)."""

    #: (k, N) ``#{j != i : s_p[i, j] >= hi[p, i]}`` and ``#{i != j : s_p[i, j] >= hi[p, j]}``.
    rows_hi: np.ndarray
    cols_hi: np.ndarray
    #: ``(p, i, j)``, i != j, with ``lo[p, i] <= s_p[i, j] < hi[p, i]`` (rows) or
    #: ``lo[p, j] <= s_p[i, j] < hi[p, j]`` (columns).
    band_rows: tuple[np.ndarray, np.ndarray, np.ndarray]
    band_cols: tuple[np.ndarray, np.ndarray, np.ndarray]


Found = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def _joined(found: Found) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    i, part, j = (np.concatenate(a).astype(np.int64) for a in zip(*found, strict=True))
    return i, part, j


def _torch_block(block: Any, r0: int, lo: np.ndarray, hi: np.ndarray, found: Found) -> np.ndarray:
    """Counts ``>= hi`` of an intra block (rows r0.., any density) and its band members."""
    import torch

    m = lo.shape[1]
    rows = torch.arange(block.shape[0], device=block.device)
    block[rows, rows + r0] = -torch.inf
    thr = torch.from_numpy(np.ascontiguousarray(np.concatenate([hi, lo], 1)))
    counts = count_at_thresholds(block, thr.to(block.device)).cpu().numpy()
    r_band, l_band = nonzero2(counts[:, m:] > counts[:, :m])
    for r in np.unique(r_band):
        ls = l_band[r_band == r]
        row = block[r].cpu().numpy()
        hit = (row[None, :] >= lo[r, ls, None]) & (row[None, :] < hi[r, ls, None])
        li, j = nonzero2(hit)
        found.append((np.full(len(j), r0 + r), ls[li], j))
    return counts[:, :m].astype(np.int64)


def _sparse_block(s: np.ndarray, r0: int, lo: np.ndarray, hi: np.ndarray,
                  found: Found) -> np.ndarray | None:  # fmt: skip
    """The same from the few similarities above each row's lowest threshold; None when
    they are too many (then :func:`_torch_block`)."""
    r, j = nonzero2(s >= lo.min(axis=1)[:, None])
    m = lo.shape[1]
    if len(r) * m > SPARSE_LIMIT:
        return None
    v = s[r, j][:, None]
    ge_hi, ge_lo = v >= hi[r], v >= lo[r]
    bounds = np.searchsorted(r, np.arange(s.shape[0] + 1))
    cum = np.zeros((len(r) + 1, m), dtype=np.int64)
    np.cumsum(ge_hi, axis=0, out=cum[1:])
    k, part = nonzero2(ge_lo & ~ge_hi)
    if len(k):
        found.append((r[k] + r0, part, j[k]))
    return cum[bounds[1:]] - cum[bounds[:-1]]


class Backend:
    """Where the dense algebra runs. Arrays are NumPy on CPU and torch on CUDA."""

    name: str
    #: Rows per GEMM block.
    gemm_rows: int
    #: Rows per block in the intra-slide pass (bounds its working memory).
    block_rows: int

    def put(self, x: np.ndarray) -> Any:
        """Move a float32 (n, d) array to the device."""
        raise NotImplementedError

    def gram(self, x: Any, y: Any) -> Any:
        """``x @ y.T`` in float32."""
        raise NotImplementedError

    def row_dots(self, x: Any, y: Any) -> np.ndarray:
        """``x_i . y_i``: float32 products summed in float64, on the host."""
        raise NotImplementedError

    def matches(self, x: Any, ys: Any) -> np.ndarray:
        """(k, N) :meth:`row_dots` of ``x`` with each (N, d) block of ``ys`` (k N, d)."""
        n = x.shape[0]
        blocks = [ys[p * n : (p + 1) * n] for p in range(ys.shape[0] // n)]
        return np.stack([self.row_dots(x, y) for y in blocks])

    def match_table(self, stacked: Any, n: int) -> np.ndarray | None:
        """(N, S, S) ``x_s[r] . x_t[r]`` for every row r and slides s, t of ``stacked``
        (S slides of N rows), or None where the backend does not build it."""
        return None

    def pair_dots(self, x: Any, i: np.ndarray, y: Any, j: np.ndarray) -> np.ndarray:
        """``x_i . y_j`` per index pair, exact products summed in float64, on the host."""
        raise NotImplementedError

    def cross_scan(self, x: Any, ys: Any, lo: np.ndarray, hi: np.ndarray) -> CrossScan:
        """``x @ ys.T`` against the (k, N) bands ``[lo, hi)`` of its rows and of its columns,
        ``ys`` being k slides of N rows stacked."""
        raise NotImplementedError

    def to_torch(self, x: Any) -> Any:
        """A torch view of a device array."""
        raise NotImplementedError

    def map_items(self, fn: Callable[[T], None], items: Sequence[T], n_tiles: int) -> None:
        """``fn`` on every item (batches of pairs, slides), in order here; see the CPU override."""
        for item in items:
            fn(item)

    def intra_scan(
        self, x: Any, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Own-slide counts against (n, m) bands, the query itself excluded by index.

        Returns ``#{j != i : x_i . x_j >= hi[i, l]}`` as (n, m) int64, and the band
        members ``(i, l, j)`` with ``lo[i, l] <= x_i . x_j < hi[i, l]``. Only
        ``block_rows`` rows of ``x @ x.T`` exist at any time.
        """
        n, m = lo.shape
        out = np.empty((n, m), dtype=np.int64)
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for r0 in range(0, n, self.block_rows):
            r1 = min(r0 + self.block_rows, n)
            block = self.to_torch(self.gram(x[r0:r1], x))
            out[r0:r1] = _torch_block(block, r0, lo[r0:r1], hi[r0:r1], found)
        return out, _joined(found)

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        """Use ``n`` CPU threads within the block (default: all cores)."""
        if n is None:
            yield
            return
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


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
        than :data:`SURVIVOR_FRACTION` of all pairs kept) is counted by full blocks."""
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
            counts = _sparse_block(s, r0, lo[r0:r1], hi[r0:r1], found[b])
            if counts is None:
                counts = _torch_block(self.to_torch(s), r0, lo[r0:r1], hi[r0:r1], found[b])
            out[r0:r1] = counts

        self._run(block, len(found))
        return out, _joined([f for part in found for f in part])

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
        rows take 0.1 s instead of 0.6 s row by row; None above :data:`MATCH_TABLE_BYTES`."""
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


class TorchBackend(Backend):
    """torch on any device (CUDA in practice), strict float32 matmuls (no TF32)."""

    gemm_rows = CUDA_GEMM_ROWS
    block_rows = CUDA_GEMM_ROWS

    def __init__(self, device: str = "cuda") -> None:
        import torch

        self.device = torch.device(device)
        self.name = self.device.type

    def put(self, x: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def gram(self, x: Any, y: Any) -> Any:
        import torch

        out = torch.empty((x.shape[0], y.shape[0]), dtype=torch.float32, device=x.device)
        with _strict_fp32():
            for r0 in range(0, x.shape[0], self.gemm_rows):
                torch.mm(x[r0 : r0 + self.gemm_rows], y.T, out=out[r0 : r0 + self.gemm_rows])
        return out

    def row_dots(self, x: Any, y: Any) -> np.ndarray:
        return (x * y).double().sum(1).cpu().numpy()

    def pair_dots(self, x: Any, i: np.ndarray, y: Any, j: np.ndarray) -> np.ndarray:
        xi, yj = x[self._t(i)].double(), y[self._t(j)].double()
        return (xi * yj).sum(1).cpu().numpy()

    def _t(self, a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def cross_scan(self, x: Any, ys: Any, lo: np.ndarray, hi: np.ndarray) -> CrossScan:
        import torch

        n = x.shape[0]
        k = ys.shape[0] // n
        eye = torch.eye(n, n, dtype=torch.bool, device=x.device)
        rows_hi, cols_hi = np.empty((k, n), dtype=np.int64), np.empty((k, n), dtype=np.int64)
        band_r: list[np.ndarray] = []
        band_c: list[np.ndarray] = []
        for p in range(k):
            sims = self.gram(x, ys[p * n : (p + 1) * n])
            lo_t, hi_t = self._t(lo[p]), self._t(hi[p])
            rows_hi[p] = _torch_side(sims, eye, lo_t[:, None], hi_t[:, None], 1, p, band_r)
            cols_hi[p] = _torch_side(sims, eye, lo_t[None, :], hi_t[None, :], 0, p, band_c)
        return CrossScan(rows_hi, cols_hi, _stacked(band_r), _stacked(band_c))

    def to_torch(self, x: Any) -> Any:
        return x


def _torch_side(
    sims: Any, eye: Any, lo: Any, hi: Any, dim: int, part: int, band: list[np.ndarray]
) -> np.ndarray:
    """Counts at or above ``hi`` along ``dim`` (the diagonal excluded); appends the band
    members ``(part, i, j)`` to ``band``."""
    import torch

    up = (sims >= hi) & ~eye
    i, j = torch.nonzero((sims >= lo) & ~up & ~eye, as_tuple=True)
    band.append(np.stack([np.full(len(i), part), i.cpu().numpy(), j.cpu().numpy()]))
    return up.sum(dim=dim).cpu().numpy()  # type: ignore[no-any-return]


def _stacked(band: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pij = np.concatenate(band, axis=1).astype(np.int64)
    return pij[0], pij[1], pij[2]


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
    import torch

    matmul = torch.backends.cuda.matmul
    previous = matmul.allow_tf32, matmul.allow_fp16_reduced_precision_reduction
    matmul.allow_tf32 = False
    matmul.allow_fp16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_tf32, matmul.allow_fp16_reduced_precision_reduction = previous


def get_backend(device: str = "auto") -> Backend:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU backend."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return NumpyBackend()
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                f"--device {device}: torch sees no CUDA GPU here; use --device cpu or auto"
            )
        return TorchBackend(device)
    if device == "torch-cpu":  # the CUDA code path run on CPU, for tests
        return TorchBackend("cpu")
    raise InputError(f"--device {device!r} is not one of auto, cpu, cuda")
