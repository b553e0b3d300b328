"""Exact retrieval ranks of matched tiles (H0-mini paper, appendix A.2).

For slides S1, S2 with matched rows, the rank of the match t_i2 for the query t_i1 is
``|{t in S1 ∪ S2, t != t_i1 : cos(t_i1, t) >= cos(t_i1, t_i2)}|``: the query is excluded
by index, ties count against, the match itself counts, so ranks start at 1.

The 2N x 2N matrix is never built. A rank splits into

* ``1`` for the match itself,
* a *cross* count over the other slide (one N x N GEMM serves both directions), and
* an *intra* count over the query's own slide, which depends on that slide only and on
  a threshold per row, so it is computed once per slide for all its partners
  (:meth:`~plismbench.metrics.backend.Backend.intra_counts`).

The threshold of row i is the diagonal entry of the very GEMM that holds the cross
similarities; ties are decided on these float32 values (see docs/metrics.md for the limit
of "exact": equal-in-theory similarities computed at different GEMM positions may differ
by an ulp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from plismbench.metrics.backend import Backend, get_backend
from plismbench.metrics.cosine import normalise


@dataclass(frozen=True)
class CrossCounts:
    """What one slide pair's GEMM contributes to both directions' ranks."""

    #: (N,) float32 cos(a_i, b_i): each row's threshold, in both directions.
    match: np.ndarray
    #: (N,) int64 ``#{j != i : cos(a_i, b_j) >= match_i}``.
    a_to_b: np.ndarray
    #: (N,) int64 ``#{j != i : cos(b_i, a_j) >= match_i}``.
    b_to_a: np.ndarray


def cross_counts(backend: Backend, xa: Any, xb: Any) -> CrossCounts:
    """One GEMM of two normalised slides; the match itself is removed by index."""
    sims = backend.gram(xa, xb)
    match = backend.diag(sims)
    # sims[i, i] == match[i] exactly, so it is counted once in each direction: remove it.
    a_to_b = backend.count_ge_rows(sims, match) - 1
    b_to_a = backend.count_ge_cols(sims, match) - 1
    return CrossCounts(match=match, a_to_b=a_to_b, b_to_a=b_to_a)


def ranks_from_counts(
    cross: CrossCounts, intra_a: np.ndarray, intra_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (a→b, b→a) from cross counts and each slide's intra counts at ``cross.match``."""
    return 1 + cross.a_to_b + intra_a, 1 + cross.b_to_a + intra_b


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
    backend = backend or get_backend(device)
    xa = backend.put(normalise(features_a, what="features_a"))
    xb = backend.put(normalise(features_b, what="features_b"))
    if features_a.shape != features_b.shape:
        raise ValueError(f"shapes differ: {features_a.shape} vs {features_b.shape}")
    cross = cross_counts(backend, xa, xb)
    thr = cross.match[:, None]
    intra_a = backend.intra_counts(xa, thr)[:, 0]
    intra_b = backend.intra_counts(xb, thr)[:, 0]
    return ranks_from_counts(cross, intra_a, intra_b)
