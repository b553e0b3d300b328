"""The range each metric can take, so that widened intervals never leave it.

The jackknife widening (`widening()`) stretches
bootstrap deviations around the estimate; near a bound (a top-10 accuracy of 0.99) the
stretched interval could otherwise reach past it (1.02), a value no model can have.
"""

from __future__ import annotations

import math

Bounds = tuple[float, float]
UNBOUNDED: Bounds = (-math.inf, math.inf)


def metric_bounds(name: str) -> Bounds:
    """Range of a per-pair metric or of its median (``cosine_similarity``, ``top_10_...``,
    ``mrr``, ``median_rank``, leaderboard labels such as ``top_10_cross_scanner``)."""
    if name.startswith("cosine_similarity"):
        return (-1.0, 1.0)
    if name.startswith(("top_", "mrr")):
        return (0.0, 1.0)
    if name.startswith("median_rank"):
        return (1.0, math.inf)
    if name.startswith("leaderboard_metric"):  # mean of a cosine and three top-10s
        return (-0.25, 1.0)
    return UNBOUNDED


def spread_bounds(name: str) -> Bounds:
    """Range of an IQR of the metric: from 0 to the width of its range."""
    lo, hi = metric_bounds(name)
    return (0.0, hi - lo)


def difference_bounds(name: str) -> Bounds:
    """Range of a difference between two models' values of the metric."""
    lo, hi = metric_bounds(name)
    return (lo - hi, hi - lo)
