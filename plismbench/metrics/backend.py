"""Dense similarity kernels on CPU (NumPy BLAS) or CUDA (torch), always in float32.

Every similarity that is compared with a threshold comes out of a float32 GEMM; TF32
and bf16 are never used, because they move similarities by about 1e-3 and so flip
ranks (see docs/metrics.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import torch

from plismbench.errors import InputError

Device = Literal["auto", "cpu", "cuda"]

#: Rows per single-threaded GEMM block on CPU. Part of the numerical contract: changing it
#: changes float32 rounding, so it is part of the cache key (see evaluate/cache.py).
GEMM_ROWS = 512
#: Rows per GEMM block on CUDA (large enough to keep the GPU busy).
CUDA_GEMM_ROWS = 4096


def count_at_thresholds(sims: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per row r and threshold l: ``#{j : sims[r, j] >= thresholds[r, l]}``.

    ``sims`` is (R, N), ``thresholds`` (R, m); returns (R, m) int64. Exact: one
    searchsorted per value against the row's sorted thresholds, then suffix sums.
    """
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


class Backend:
    """Where the dense algebra runs. Arrays are NumPy on CPU and torch on CUDA."""

    name: str
    #: Rows per GEMM block. Every similarity comes from a GEMM of exactly this many rows
    #: (the last block excepted), in both the cross and the intra stage, so equal inputs
    #: give bit-equal similarities whatever the library's per-shape kernel choice.
    gemm_rows: int
    #: Rows per block in the intra-slide pass (bounds its working memory); a multiple of
    #: ``gemm_rows``.
    block_rows: int

    def put(self, x: np.ndarray) -> Any:
        """Move a float32 (n, d) array to the device."""
        raise NotImplementedError

    def gram(self, x: Any, y: Any) -> Any:
        """``x @ y.T`` in float32."""
        raise NotImplementedError

    def diag(self, m: Any) -> np.ndarray:
        """The diagonal of a square matrix, on the host."""
        raise NotImplementedError

    def count_ge_rows(self, m: Any, thr: np.ndarray) -> np.ndarray:
        """``#{j : m[i, j] >= thr[i]}`` for every row i."""
        raise NotImplementedError

    def count_ge_cols(self, m: Any, thr: np.ndarray) -> np.ndarray:
        """``#{i : m[i, j] >= thr[j]}`` for every column j."""
        raise NotImplementedError

    def to_torch(self, x: Any) -> torch.Tensor:
        """A torch view of a device array."""
        raise NotImplementedError

    def intra_counts(self, x: Any, thresholds: np.ndarray) -> np.ndarray:
        """``#{j != i : x_i . x_j >= thresholds[i, l]}`` as an (n, m) int64 array.

        The query itself is excluded by index, not by value. Only ``block_rows`` rows of
        ``x @ x.T`` exist at any time.
        """
        n = thresholds.shape[0]
        out = np.empty(thresholds.shape, dtype=np.int64)
        for r0 in range(0, n, self.block_rows):
            r1 = min(r0 + self.block_rows, n)
            block = self.to_torch(self.gram(x[r0:r1], x))
            rows = torch.arange(r1 - r0, device=block.device)
            block[rows, rows + r0] = -torch.inf
            thr = torch.from_numpy(np.ascontiguousarray(thresholds[r0:r1])).to(block.device)
            out[r0:r1] = count_at_thresholds(block, thr).cpu().numpy()
        return out

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        """Use ``n`` CPU threads within the block (default: all cores)."""
        if n is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


class NumpyBackend(Backend):
    """CPU: float32 BLAS GEMM and vectorised comparisons on zero-copy views.

    OpenBLAS results depend on its thread count, so the GEMM is cut into fixed
    ``gemm_rows``-row blocks, each computed single-threaded, spread over a thread
    pool: every similarity is bit-identical whatever ``--workers`` is (and a resumed run
    matches an uninterrupted one), at the speed of multithreaded BLAS.
    """

    name = "cpu"
    gemm_rows = GEMM_ROWS
    block_rows = 2 * GEMM_ROWS

    def __init__(self) -> None:
        self.workers = os.cpu_count() or 1

    def put(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def gram(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], y.shape[0]), dtype=np.float32)
        yt = y.T

        rows = self.gemm_rows

        def block(r0: int) -> None:
            np.matmul(x[r0 : r0 + rows], yt, out=out[r0 : r0 + rows])

        starts = range(0, x.shape[0], rows)
        with _blas_controller().limit(limits=1, user_api="blas"):
            if self.workers == 1 or len(starts) == 1:
                for r0 in starts:
                    block(r0)
            else:
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    list(pool.map(block, starts))
        return out

    def diag(self, m: np.ndarray) -> np.ndarray:
        return np.diagonal(m).copy()

    def count_ge_rows(self, m: np.ndarray, thr: np.ndarray) -> np.ndarray:
        return (m >= thr[:, None]).view(np.uint8).sum(axis=1, dtype=np.int64)

    def count_ge_cols(self, m: np.ndarray, thr: np.ndarray) -> np.ndarray:
        return (m >= thr[None, :]).view(np.uint8).sum(axis=0, dtype=np.int64)

    def to_torch(self, x: np.ndarray) -> torch.Tensor:
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
        self.device = torch.device(device)
        self.name = self.device.type

    def put(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def gram(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.empty((x.shape[0], y.shape[0]), dtype=torch.float32, device=x.device)
        with _strict_fp32():
            for r0 in range(0, x.shape[0], self.gemm_rows):
                torch.mm(x[r0 : r0 + self.gemm_rows], y.T, out=out[r0 : r0 + self.gemm_rows])
        return out

    def diag(self, m: torch.Tensor) -> np.ndarray:
        return m.diagonal().cpu().numpy().copy()

    def count_ge_rows(self, m: torch.Tensor, thr: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(thr).to(m.device)
        return (m >= t[:, None]).sum(dim=1, dtype=torch.int64).cpu().numpy()

    def count_ge_cols(self, m: torch.Tensor, thr: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(thr).to(m.device)
        return (m >= t[None, :]).sum(dim=0, dtype=torch.int64).cpu().numpy()

    def to_torch(self, x: torch.Tensor) -> torch.Tensor:
        return x


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
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
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return NumpyBackend()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                f"--device {device}: torch sees no CUDA GPU here; use --device cpu or auto"
            )
        return TorchBackend(device)
    if device == "torch-cpu":  # the CUDA code path run on CPU, for tests
        return TorchBackend("cpu")
    raise InputError(f"--device {device!r} is not one of auto, cpu, cuda")
