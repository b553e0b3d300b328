"""Counting a dense similarity block against many thresholds per row (the intra stage
when too many similarities survive: constant slides, duplicated tiles), and NumPy's
flat-index ``nonzero``."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Above this many (value, threshold) comparisons per block, intra counts use a sort.
SPARSE_LIMIT = 1 << 24
#: Band members ``(row, partner, column)`` found so far.
Found = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


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


def joined(found: Found) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    i, part, j = (np.concatenate(a).astype(np.int64) for a in zip(*found, strict=True))
    return i, part, j


def torch_block(block: Any, r0: int, lo: np.ndarray, hi: np.ndarray, found: Found) -> np.ndarray:
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


def sparse_block(s: np.ndarray, r0: int, lo: np.ndarray, hi: np.ndarray,
                  found: Found) -> np.ndarray | None:  # fmt: skip
    """The same from the few similarities above each row's lowest threshold; None when
    they are too many (then `_torch_block()`)."""
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

