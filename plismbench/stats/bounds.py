"""The range each metric can take, so that widened intervals never leave it.

The jackknife widening (:meth:`~plismbench.stats.bootstrap.Bootstrap.widening`) stretches
bootstrap deviations around the estimate; near a bound (a top-10 accuracy of 0.99) the
stretched interval could otherwise reach past it (1.02), a value no model can have.
"""

from __future__ import annotations

from plismbench.metrics.catalogue import UNBOUNDED, Bounds
from plismbench.metrics.catalogue import bounds as metric_bounds

__all__ = ["UNBOUNDED", "Bounds", "difference_bounds", "metric_bounds"]


def difference_bounds(name: str) -> Bounds:
    """Range of a difference between two models' values of the metric."""
    lo, hi = metric_bounds(name)
    return (lo - hi, hi - lo)
