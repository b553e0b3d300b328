"""Weighted quantiles of many resamples at once: one gather, one cumulative sum, a bisection.

A resample is a row of integer multiplicities over sorted values. The value at position
``i`` of the expanded (repeated) sample is ``v[#{k : cum[k] <= i}]``, where ``cum`` is the
row's cumulative sum; a bisection over all rows at once finds that count in
``log2(n)`` gathers of one element per row instead of comparing every column.

Cumulative sums of non-negative weights never exceed the row's total, so they are
accumulated in int32 (NumPy's fast path) whenever every row total fits; :func:`accumulator`
checks rather than assumes. On PLISM a hierarchical resample draws 91 slides in all
(slide weights ``s`` sum to 13 x 7), so a row totals ``(91^2 - sum s^2) / 2 <= 4,095``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

INT32_MAX = int(np.iinfo(np.int32).max)


def accumulator(weights: np.ndarray) -> type[np.number]:
    """int32 when weights are non-negative and every row's total fits in it, else int64.

    Weights that are not integers keep float64 sums.
    """
    if weights.dtype.kind not in "iub":
        return np.float64
    if weights.size == 0:
        return np.int32
    if weights.min() < 0 or weights.sum(axis=1, dtype=np.int64).max() > INT32_MAX:
        return np.int64
    return np.int32


def prefix_sums(weights: np.ndarray, columns: np.ndarray, dtype: type) -> np.ndarray:
    """(n_rows, len(columns)) cumulative sums of ``weights[:, columns]`` along each row."""
    taken = np.take(weights, columns, axis=1)
    return np.cumsum(taken.astype(dtype, copy=False), axis=1, dtype=dtype)


#: ``at(rows, idx)``: each row's cumulative weight through sorted position ``idx``.
Prefix = Callable[[np.ndarray, np.ndarray], np.ndarray]


def count_at_most(at: Prefix, n: int, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``#{k < n : at(rows, k) <= targets}`` elementwise (``searchsorted`` side right).

    ``targets``: (n_targets, len(rows)); ``at`` non-decreasing in ``k`` for every row.
    """
    lo = np.zeros(targets.shape, dtype=np.intp)
    hi = np.full(targets.shape, n, dtype=np.intp)
    r = np.broadcast_to(rows, targets.shape)
    for _ in range(max(n, 1).bit_length()):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        below = at(r, np.minimum(mid, n - 1)) <= targets
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    return lo


class Targets(NamedTuple):
    """Where each quantile falls in the expanded sample of every row of positive weight."""

    ok: np.ndarray  #: (n_rows,) rows of positive total weight
    hs: list[np.ndarray]  #: per quantile: fractional position ``q x (total - 1)``
    los: list[np.ndarray]  #: its floor
    his: list[np.ndarray]  #: the next position, within the sample

    def stacked(self) -> np.ndarray:
        """(2 len(qs), n_ok) positions to look up: every ``lo``, then every ``hi``."""
        return np.stack([*self.los, *self.his])


def targets(total: np.ndarray, qs: Sequence[float]) -> Targets:
    """NumPy's linear ``np.quantile`` positions for rows of ``total`` weight (qs in [0, 1])."""
    ok = total > 0
    tot = total[ok].astype(np.int64)
    hs = [q * (tot - 1) for q in qs]
    los = [np.floor(h).astype(np.int64) for h in hs]
    return Targets(ok, hs, los, [np.minimum(lo + 1, tot - 1) for lo in los])


def interpolate(v: np.ndarray, t: Targets, counts: np.ndarray) -> np.ndarray:
    """(n_rows, len(qs)) quantiles from the sorted values' indices at :meth:`Targets.stacked`.

    NaN where a row's total weight is zero.
    """
    n_q = len(t.hs)
    out = np.full((len(t.ok), n_q), np.nan)
    for j, (h, lo) in enumerate(zip(t.hs, t.los, strict=True)):
        v_lo, v_hi = v[counts[j]], v[counts[n_q + j]]
        out[t.ok, j] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


def from_prefix(v: np.ndarray, total: np.ndarray, at: Prefix, qs: Sequence[float]) -> np.ndarray:
    """(n_rows, len(qs)) linear quantiles, NaN where a row's ``total`` weight is zero.

    ``v``: the sorted values; ``total``: (n_rows,) each row's weight; ``at``: its prefix sums.
    The arithmetic is NumPy's linear ``np.quantile`` of the repeated values.
    """
    t = targets(total, qs)
    counts = count_at_most(at, len(v), np.flatnonzero(t.ok), t.stacked())
    return interpolate(v, t, counts)


def row_prefix(cum: np.ndarray, start: int = 0, base: np.ndarray | None = None) -> Prefix:
    """Prefix sums read from a (n_rows, n) cumulative-sum matrix.

    With ``start`` and ``base`` (n_rows,): those of the columns from ``start`` on, read
    from a cumulative sum that had already reached ``base`` before them.
    """
    flat, width = cum.reshape(-1), cum.shape[1]  # one flat take beats 2-D fancy indexing
    if base is None:
        return lambda rows, idx: np.take(flat, rows * width + (start + idx))
    return lambda rows, idx: np.take(flat, rows * width + (start + idx)) - np.take(base, rows)


def merged_prefix(segments: Sequence[tuple[Prefix, np.ndarray]]) -> Prefix:
    """Prefix sums of a merge of sorted segments, from each segment's own prefix sums.

    ``segments``: ``(at, taken)`` with ``taken[k]`` the number of the segment's columns
    among the first ``k`` merged positions (length n + 1).
    """

    def at(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        acc = np.zeros(idx.shape, dtype=np.int64)
        for seg_at, taken in segments:
            c = taken[idx + 1]
            acc += np.where(c > 0, seg_at(rows, np.maximum(c - 1, 0)), 0)
        return acc

    return at


def column_quantiles(
    weights: np.ndarray, columns: np.ndarray, v: np.ndarray, qs: Sequence[float],
    dtype: type | None = None,
) -> np.ndarray:  # fmt: skip
    """(n_rows, len(qs)) quantiles of ``v`` (sorted) weighted by ``weights[:, columns]``."""
    cum = prefix_sums(weights, columns, dtype or accumulator(weights))
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(weights), dtype=np.int64)
    return from_prefix(v, total, row_prefix(cum), qs)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(n_boot, len(qs)) linear quantiles of ``values`` repeated by each row of ``weights``.

    NaN where a row's weights sum to zero. ``values``: (n,); ``weights``: (n_boot, n) of
    non-negative integers. Equal to ``np.quantile(np.repeat(values, row), qs)`` per row.
    """
    order = np.argsort(values, kind="stable")
    return column_quantiles(weights, order, np.asarray(values, dtype=np.float64)[order], qs)
