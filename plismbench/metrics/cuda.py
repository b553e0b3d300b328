"""The torch backend (CUDA in practice; ``torch-cpu`` runs the same code on CPU for
tests): strict float32 matmuls, TF32 and reduced-precision reductions off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from plismbench.metrics.backend import Backend, CrossScan

#: Rows per GEMM block on CUDA (large enough to keep the GPU busy).
CUDA_GEMM_ROWS = 4096


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
