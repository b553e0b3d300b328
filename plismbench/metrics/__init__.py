"""PLISM robustness metrics: matched-tile cosine similarity and exact retrieval ranks."""

from plismbench.metrics.ranks import pair_ranks
from plismbench.metrics.retrieval import RetrievalSummary, summarise_ranks

__all__ = ["RetrievalSummary", "pair_ranks", "summarise_ranks"]
