"""PLISM robustness metrics: matched-tile cosine similarity and exact retrieval ranks.

Submodules load lazily, so that importing `plismbench.metrics.aggregate` (as the
leaderboard does) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RetrievalSummary", "pair_ranks", "summarise_ranks"]

_WHERE = {
    "pair_ranks": "plismbench.metrics.ranks",
    "RetrievalSummary": "plismbench.metrics.retrieval",
    "summarise_ranks": "plismbench.metrics.retrieval",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
