"""Exact retrieval ranks of matched tiles (H0-mini paper, appendix A.2).

For slides S1, S2 with matched rows, the rank of the match t_i2 for the query t_i1 is
``|{t in S1 ∪ S2, t != t_i1 : cos(t_i1, t) >= cos(t_i1, t_i2)}|``: the query is excluded
by index, ties count against, the match itself counts, so ranks start at 1.

The 2N x 2N matrix is never built. A rank splits into

* ``1`` for the match itself,
* a *cross* count over the other slide (one N x N GEMM serves both directions), and
* an *intra* count over the query's own slide, which depends on that slide only and on
  a threshold per row, so it is computed once per slide for all its partners.

Every comparison is exact: float32 GEMM values outside a proven band around the
threshold decide at once; the few inside are re-decided on the raw features
(`plismbench.metrics.exact`), so ranks equal those over the real numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.ma  # np.unique imports it on first use: 30 ms inside a run otherwise

from plismbench.metrics.backend import Backend, get_backend
from plismbench.metrics.cosine import normalise
from plismbench.metrics.exact import at_least_as_similar, gemm_band, split_band, thresholds32

#: Local row indices -> the raw (un-normalised) feature rows, float64 (k, d).
RawRows = Callable[[np.ndarray], np.ndarray]
#: Triples decided per call (bounds the memory of the gathered rows).
CHUNK = 4096


@dataclass(frozen=True)
class CrossCounts:
    """What one slide pair's GEMM contributes to both directions' ranks."""

    #: (N,) float64 cos(a_i, b_i) of the normalised rows: each row's threshold.
    match: np.ndarray
    #: (N,) int64 ``#{j != i : cos(a_i, b_j) >= cos(a_i, b_i)}``.
    a_to_b: np.ndarray
    #: (N,) int64 ``#{j != i : cos(b_i, a_j) >= cos(b_i, a_i)}``.
    b_to_a: np.ndarray


def decide(
    q: RawRows, iq: np.ndarray, t: RawRows, it: np.ndarray, m: RawRows, im: np.ndarray
) -> np.ndarray:
    """``cos(q[iq], t[it]) >= cos(q[iq], m[im])`` for each triple, exactly."""
    out = np.empty(len(iq), dtype=bool)
    for c0 in range(0, len(iq), CHUNK):
        sl = slice(c0, c0 + CHUNK)
        out[sl] = at_least_as_similar(q(iq[sl]), t(it[sl]), m(im[sl]))
    return out


def _settle(
    sims64: np.ndarray, match64: np.ndarray, dim: int, exact: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Band members decided in float64 where the bound allows, else by ``exact(mask)``."""
    win, unsure = split_band(sims64, match64, dim)
    if unsure.any():
        win[unsure] = exact(unsure)
    return win


def cross_counts(
    backend: Backend, xa: Any, xb: Any, raw_a: RawRows, raw_b: RawRows
) -> CrossCounts:
    """One GEMM of two normalised slides; the match itself is excluded by index."""
    return cross_counts_many(backend, xa, xb, raw_a, [raw_b])[0]


def cross_counts_many(
    backend: Backend, xa: Any, xbs: Any, raw_a: RawRows, raw_bs: Sequence[RawRows],
    match: np.ndarray | None = None,
) -> list[CrossCounts]:
    """`cross_counts()` of slide ``a`` with each of k slides stacked in ``xbs``
    ((k N, d), raw rows ``raw_bs``), the Python around the GEMMs paid once. ``match``:
    the (k, N) float64 matches when already known (any summation order: ranks are exact;
    products of float32 values are exact in float64)."""
    dim = int(xa.shape[1])
    if match is None:
        match = backend.matches(xa, xbs)  # (k, N)
    lo, hi = thresholds32(match, gemm_band(dim))
    scan = backend.cross_scan(xa, xbs, lo, hi)
    a_to_b, b_to_a = scan.rows_hi, scan.cols_hi
    _add_band(a_to_b, scan.band_rows, True, backend, xa, xbs, match, raw_a, raw_bs)
    _add_band(b_to_a, scan.band_cols, False, backend, xa, xbs, match, raw_a, raw_bs)
    return [CrossCounts(match[q], a_to_b[q], b_to_a[q]) for q in range(len(raw_bs))]


def _add_band(
    counts: np.ndarray, band: tuple[np.ndarray, np.ndarray, np.ndarray], a_queries: bool,
    backend: Backend, xa: Any, xbs: Any, match: np.ndarray, raw_a: RawRows,
    raw_bs: Sequence[RawRows],
) -> None:  # fmt: skip
    """Band members ``(p, i, j)`` of one direction (queries ``a_i`` or ``b_j``), settled
    in float64 then exactly, added to ``counts[p, query]``. The match of query q is the
    candidate slide's row q."""
    p, i, j = band
    if not len(i):
        return
    q, c = (i, j) if a_queries else (j, i)

    def exact(u: np.ndarray) -> np.ndarray:
        pu, qu, cu = p[u], q[u], c[u]
        out = np.empty(len(pu), dtype=bool)
        for part in np.unique(pu):  # grouped by the partner slide
            sel = np.flatnonzero(pu == part)
            rb = raw_bs[int(part)]
            rq, rc = (raw_a, rb) if a_queries else (rb, raw_a)
            out[sel] = decide(rq, qu[sel], rc, cu[sel], rc, qu[sel])
        return out

    n, dim = int(xa.shape[0]), int(xa.shape[1])
    win = _settle(backend.pair_dots(xa, i, xbs, p * n + j), match[p, q], dim, exact)
    np.add.at(counts, (p[win], q[win]), 1)


def intra_counts(
    backend: Backend, x: Any, match: np.ndarray, raw: RawRows, partners: Sequence[RawRows]
) -> np.ndarray:
    """``#{j != i : cos(x_i, x_j) >= cos(x_i, p_i)}`` for every partner p, (n, m) int64.

    ``match[:, l]`` holds the float64 thresholds against partner ``l``, whose raw rows
    ``partners[l]`` settle the near ties.
    """
    dim = int(x.shape[1])
    lo, hi = thresholds32(match, gemm_band(dim))
    counts, (i, part, j) = backend.intra_scan(x, lo, hi)
    if not len(i):
        return counts
    key = i * len(match) + j  # one similarity serves every partner whose band holds it
    uniq, back = np.unique(key, return_inverse=True)
    dots = np.concatenate([
        backend.pair_dots(x, u // len(match), x, u % len(match))
        for u in np.array_split(uniq, max(1, len(uniq) // CHUNK))
    ])  # fmt: skip
    sure, unsure = split_band(dots[back], match[i, part], dim)
    np.add.at(counts, (i[sure], part[sure]), 1)
    for p in np.unique(part[unsure]):
        sel = unsure & (part == p)
        ii, jj = i[sel], j[sel]
        win = decide(raw, ii, raw, jj, partners[int(p)], ii)
        np.add.at(counts, (ii[win], int(p)), 1)
    return counts


def ranks_from_counts(
    cross: CrossCounts, intra_a: np.ndarray, intra_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (a→b, b→a) from cross counts and each slide's intra counts at ``cross.match``."""
    return 1 + cross.a_to_b + intra_a, 1 + cross.b_to_a + intra_b


def in_memory(features: np.ndarray) -> RawRows:
    """A `RawRows` over an in-memory array."""
    arr = np.asarray(features)
    return lambda idx: np.asarray(arr[idx], dtype=np.float64)


def pair_ranks(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    device: str = "cpu",
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ranks of the matches of one slide pair, both directions.

    ``features_a`` and ``features_b`` are (N, d) arrays with matched rows (not yet
    normalised). Returns ``(ranks_a_to_b, ranks_b_to_a)``, int64 arrays of shape (N,).
    """
    if np.shape(features_a) != np.shape(features_b):
        raise ValueError(f"shapes differ: {np.shape(features_a)} vs {np.shape(features_b)}")
    backend = backend or get_backend(device)
    xa = backend.put(normalise(features_a, what="features_a"))
    xb = backend.put(normalise(features_b, what="features_b"))
    ra, rb = in_memory(features_a), in_memory(features_b)
    cross = cross_counts(backend, xa, xb, ra, rb)
    thr = cross.match[:, None]
    intra_a = intra_counts(backend, xa, thr, ra, [rb])[:, 0]
    intra_b = intra_counts(backend, xb, thr, rb, [ra])[:, 0]
    return ranks_from_counts(cross, intra_a, intra_b)
