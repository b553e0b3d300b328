"""Counting intra-slide similarities against many thresholds per row, from the few kept.

The intra stage keeps only the *survivors* of a slide's own similarities: ``(query q,
candidate c, similarity v)`` with ``v`` at or above the query's lowest threshold. This
module turns them into ``#{v >= hi[q, l]}`` per (query, partner) plus the band members
(``lo[q, l] <= v < hi[q, l]``), in O(K log m) for K survivors, chunk by chunk (each
worker thread places its own chunk; `RowThresholds.counts()` adds them up).

Each row's ``2m`` band edges are sorted together once and offset by 4 q (similarities
lie in [-2, 2]), so one ``searchsorted`` places every survivor among its own row's
edges: the number of ``hi`` edges at or below it is its count, and it lies inside some
band exactly when fewer ``hi`` than ``lo`` edges are at or below it. Survivors given in
row order search far faster (locality). The offset rounds values by at most 2^-37 x 4n,
far inside the band's margin (a fifth of the band), so a value that close to ``hi`` is a
sure win anyway; survivors inside any band are compared with every threshold of their
row.
"""

from __future__ import annotations

import threading

import numpy as np

Band = tuple[np.ndarray, np.ndarray, np.ndarray]


class RowThresholds:
    """(n, m) bands ``[lo, hi)`` prepared for placing survivors, and their running counts.

    Requires ``lo < hi`` everywhere (as `thresholds32()`
    gives, rounding outwards): an inverted band would lose its members silently.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo, self.hi = lo, hi
        n, m = lo.shape
        edges = np.concatenate([lo, hi], axis=1)  # edge e < m is a lo, e >= m a hi
        by_edge = np.argsort(edges, axis=1)  # the order of equal edges never matters
        is_hi = by_edge >= m
        self.order = (by_edge[is_hi] - m).reshape(n, m)  # each row's hi edges, ascending
        offset = 4.0 * np.arange(n)[:, None]
        self.keys = (np.take_along_axis(edges, by_edge, axis=1) + offset).ravel()
        # hi edges among the first p sorted edges of each row, p = 0..2m
        self.n_hi = np.zeros((n, 2 * m + 1), dtype=np.int64)
        np.cumsum(is_hi, axis=1, out=self.n_hi[:, 1:])
        self.n_hi = self.n_hi.ravel()
        self.hist = np.zeros(n * (m + 1), dtype=np.int64)
        self.rest: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._lock = threading.Lock()

    def place(self, q: np.ndarray, c: np.ndarray, v: np.ndarray) -> None:
        """Add survivors (any order; row order is fastest). Thread-safe."""
        m = self.lo.shape[1]
        key = v.astype(np.float64) + 4.0 * q
        at = np.searchsorted(self.keys, key, side="right") + q  # row q's table starts at q(2m+1)
        pos_hi = self.n_hi[at]
        clear = at - q * (2 * m + 1) == 2 * pos_hi  # as many lo as hi edges below: no band
        hist = np.bincount(q[clear] * (m + 1) + pos_hi[clear], minlength=len(self.hist))
        rest = np.flatnonzero(~clear)
        with self._lock:
            self.hist += hist
            if len(rest):
                self.rest.append((q[rest], c[rest], v[rest]))

    def counts(self) -> tuple[np.ndarray, Band]:
        """``(#{v >= hi} per (query, partner), band members (q, partner, c))``."""
        n, m = self.lo.shape
        suffix = np.cumsum(self.hist.reshape(n, m + 1)[:, ::-1], axis=1)[:, ::-1]
        out = np.empty((n, m), dtype=np.int64)
        np.put_along_axis(out, self.order, suffix[:, 1:], axis=1)  # > l-th smallest: >= it
        if not self.rest:
            empty = np.zeros(0, dtype=np.int64)
            return out, (empty, empty, empty)
        qr, cr, vr = (np.concatenate(a) for a in zip(*self.rest, strict=True))
        ge_hi, ge_lo = vr[:, None] >= self.hi[qr], vr[:, None] >= self.lo[qr]
        k, part = np.divmod(np.flatnonzero(ge_hi), m)
        out += np.bincount(qr[k] * m + part, minlength=n * m).reshape(n, m)
        k, part = np.divmod(np.flatnonzero(ge_lo & ~ge_hi), m)
        return out, (qr[k].astype(np.int64), part.astype(np.int64), cr[k].astype(np.int64))
