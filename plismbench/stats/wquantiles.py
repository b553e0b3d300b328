"""Weighted quantiles of many resamples at once: one gather, one cumulative sum, a bisection.

A resample is a row of integer multiplicities over sorted values. The value at position
``i`` of the expanded (repeated) sample is ``v[#{k : cum[k] <= i}]``, where ``cum`` is the
row's cumulative sum; a bisection over all rows at once finds that count in
``log2(n)`` gathers of one element per row instead of comparing every column.

Cumulative sums of non-negative weights never exceed the row's total, so they are
accumulated in int32 (NumPy's fast path) whenever every row total fits; `accumulator()`
checks rather than assumes. On PLISM a hierarchical resample draws 91 slides in all
(slide weights ``s`` sum to 13 x 7), so a row totals ``(91^2 - sum s^2) / 2 <= 4,095``.
"""

from __future__ import annotations

import threading
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


def smallest_int(largest: int) -> type[np.signedinteger]:
    """The smallest signed integer type holding ``0..largest`` (gathers move fewer bytes)."""
    for dtype in (np.int16, np.int32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.int64


class Workspace(threading.local):
    """Per-thread buffers reused from call to call: a fresh 16 MB array pays its page faults."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def array(self, key: str, shape: tuple[int, int], dtype: type | np.dtype) -> np.ndarray:
        """A C-ordered (uninitialised) array of ``shape``, kept for the next call."""
        size = shape[0] * shape[1]
        buf = self.buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self.buffers[key] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def prefix_sums(
    weights: np.ndarray, columns: np.ndarray, dtype: type, work: Workspace | None = None
) -> np.ndarray:
    """(n_rows, len(columns)) cumulative sums of ``weights[:, columns]`` along each row.

    With ``work``, the result lives in its buffers until the next call in this thread.
    ``mode="clip"`` only spares NumPy's defensive copy: the columns are valid indices.
    """
    if work is None:
        taken = np.take(weights, columns, axis=1, mode="clip")
        return np.cumsum(taken.astype(dtype, copy=False), axis=1, dtype=dtype)
    shape = (len(weights), len(columns))
    taken = work.array("taken", shape, weights.dtype)
    np.take(weights, columns, axis=1, out=taken, mode="clip")
    return np.cumsum(taken, axis=1, dtype=dtype, out=work.array("cum", shape, dtype))


#: ``at(idx)``: cumulative weights through sorted positions ``idx``, one per target.
Reader = Callable[[np.ndarray], np.ndarray]


def count_at_most(at: Reader, n: int, targets: np.ndarray) -> np.ndarray:
    """``#{k < n : at(k) <= targets}`` elementwise (``searchsorted`` side right).

    ``at`` is non-decreasing in ``k`` for every target. Binary lifting over powers of
    two: ``log2(n)`` reads of one element per target. A candidate past ``n`` reads
    ``at(n - 1)``; when that is ``<= target`` every position counts, hence the clamp.
    """
    pos = np.zeros(targets.shape, dtype=np.intp)
    step = 1 << (n.bit_length() - 1) if n > 0 else 0
    while step:
        cand = pos + step
        pos = np.where(at(np.minimum(cand, n) - 1) <= targets, cand, pos)
        step >>= 1
    return np.minimum(pos, n)


class Targets(NamedTuple):
    """Where each quantile falls in the expanded sample of every row of positive weight."""

    ok: np.ndarray  #: (n_rows,) rows of positive total weight
    hs: list[np.ndarray]  #: per quantile: fractional position ``q x (total - 1)``
    los: list[np.ndarray]  #: its floor
    his: list[np.ndarray]  #: the next position, within the sample

    @property
    def rows(self) -> np.ndarray:
        """(2 len(qs), n_ok) the row of every position of `stacked()`."""
        ok_rows = np.flatnonzero(self.ok)
        return np.broadcast_to(ok_rows, (2 * len(self.hs), len(ok_rows)))

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
    """(n_rows, len(qs)) quantiles from the sorted values' indices at `Targets.stacked()`.

    NaN where a row's total weight is zero.
    """
    n_q = len(t.hs)
    out = np.full((len(t.ok), n_q), np.nan)
    for j, (h, lo) in enumerate(zip(t.hs, t.los, strict=True)):
        v_lo, v_hi = v[counts[j]], v[counts[n_q + j]]
        out[t.ok, j] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


def flat_reader(cum: np.ndarray, rows: np.ndarray, start: int = 0) -> Reader:
    """Reads ``cum[rows, start + idx]`` with one flat take (2-D fancy indexing is slower)."""
    flat, offsets = cum.reshape(-1), rows * cum.shape[1] + start
    return lambda idx: np.take(flat, offsets + idx)


def cum_quantiles(v: np.ndarray, cum: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(n_rows, len(qs)) linear quantiles of sorted ``v`` from each row's cumulative weights.

    The arithmetic is NumPy's linear ``np.quantile`` of the repeated values; NaN where a
    row's weights sum to zero.
    """
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(cum), dtype=np.int64)
    t = targets(total, qs)
    return interpolate(v, t, count_at_most(flat_reader(cum, t.rows), len(v), t.stacked()))


def column_quantiles(
    weights: np.ndarray, columns: np.ndarray, v: np.ndarray, qs: Sequence[float],
    dtype: type | None = None, work: Workspace | None = None,
) -> np.ndarray:  # fmt: skip
    """(n_rows, len(qs)) quantiles of ``v`` (sorted) weighted by ``weights[:, columns]``."""
    cum = prefix_sums(weights, columns, dtype or accumulator(weights), work)
    return cum_quantiles(v, cum, qs)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(n_boot, len(qs)) linear quantiles of ``values`` repeated by each row of ``weights``.

    NaN where a row's weights sum to zero. ``values``: (n,); ``weights``: (n_boot, n) of
    non-negative integers. Equal to ``np.quantile(np.repeat(values, row), qs)`` per row.
    """
    order = np.argsort(values, kind="stable")
    return column_quantiles(weights, order, np.asarray(values, dtype=np.float64)[order], qs)
