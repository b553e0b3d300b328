"""Where the dense similarity algebra runs: the :class:`Backend` interface and
:func:`get_backend`. Implementations: :mod:`plismbench.metrics.cpu` (NumPy BLAS) and
:mod:`plismbench.metrics.cuda` (torch, CUDA in practice).

Every similarity that is compared with a threshold comes out of a float32 GEMM; TF32
and bf16 are never used, because they move similarities by about 1e-3 and so flip
ranks (see docs/metrics.md). Comparisons are made against a band ``[lo, hi)`` around
each float64 threshold: values at or above ``hi`` surely count, values below ``lo``
surely do not, and the few inside are returned for an exact decision
(:mod:`plismbench.metrics.exact`). torch is imported only when needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from plismbench.errors import no_cuda_error, unknown_device_error
from plismbench.metrics.dense import joined, torch_block

Device = Literal["auto", "cpu", "cuda"]
T = TypeVar("T")


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
            out[r0:r1] = torch_block(block, r0, lo[r0:r1], hi[r0:r1], found)
        return out, joined(found)

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

def get_backend(device: str = "auto") -> Backend:
    """``auto`` picks CUDA when torch sees a GPU, else the CPU backend."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        from plismbench.metrics.cpu import NumpyBackend

        return NumpyBackend()
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise no_cuda_error(f"--device {device}")
        from plismbench.metrics.cuda import TorchBackend

        return TorchBackend(device)
    if device == "torch-cpu":  # the CUDA code path run on CPU, for tests
        from plismbench.metrics.cuda import TorchBackend

        return TorchBackend("cpu")
    raise unknown_device_error(device)
