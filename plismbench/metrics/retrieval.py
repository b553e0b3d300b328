"""Retrieval metrics from exact ranks: top-k accuracy, mean reciprocal rank, median rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from plismbench.metrics.catalogue import mean_reciprocal_rank, median_rank

DEFAULT_TOP_K: tuple[int, ...] = (1, 3, 5, 10)


@dataclass(frozen=True)
class RetrievalSummary:
    """One slide pair's retrieval metrics.

    Symmetric values average the two directions (equal weight, as they have equal size);
    ``median_rank`` is the median of the 2N pooled ranks.
    """

    top_k: dict[int, float]
    top_k_a_to_b: dict[int, float]
    top_k_b_to_a: dict[int, float]
    mrr: float
    median_rank: float


def top_k_accuracy(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose match has rank <= k."""
    return float(np.mean(ranks <= k))


def summarise_ranks(
    ranks_a_to_b: np.ndarray, ranks_b_to_a: np.ndarray, top_k: Sequence[int] = DEFAULT_TOP_K
) -> RetrievalSummary:
    """Top-k per direction and their mean, mean reciprocal rank and median rank."""
    ab = {k: top_k_accuracy(ranks_a_to_b, k) for k in top_k}
    ba = {k: top_k_accuracy(ranks_b_to_a, k) for k in top_k}
    rows = ranks_a_to_b[None, :], ranks_b_to_a[None, :]
    return RetrievalSummary(
        top_k={k: (ab[k] + ba[k]) / 2 for k in top_k},
        top_k_a_to_b=ab,
        top_k_b_to_a=ba,
        mrr=float(mean_reciprocal_rank(*rows)[0]),
        median_rank=float(median_rank(*rows)[0]),
    )
