"""The range each metric can take, so that widened intervals never leave it.

The jackknife widening (:meth:`~plismbench.stats.bootstrap.Bootstrap.widening`) stretches
bootstrap deviations around the estimate; near a bound (a top-10 accuracy of 0.99) the
stretched interval could otherwise reach past it (1.02), a value no model can have.
"""

from __future__ import annotations

from plismbench.metrics.catalogue import UNBOUNDED, Bounds
from plismbench.metrics.catalogue import bounds as metric_bounds

__all__ = ["UNBOUNDED", "Bounds", "difference_bounds", "metric_bounds", "spread_bounds"]


def spread_bounds(name: str) -> Bounds:
    """Range of an IQR of the metric: from 0 to the width of its range."""
    lo, hi = metric_bounds(name)
    return (0.0, hi - lo)


def difference_bounds(name: str) -> Bounds:
    """Range of a difference between two models' values of the metric."""
    lo, hi = metric_bounds(name)
    return (lo - hi, hi - lo)
