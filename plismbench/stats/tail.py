"""Tail robustness: the mean of the worst 10% of slide pairs, for every resample at once.

The *lower-decile mean* of values ``v`` with weights ``w`` (total ``W``) is the mean of
the lowest ``q W`` units of weight (``q = 0.1``): every value whose cumulative weight
(in value order) stays within ``q W`` counts fully, the value that crosses ``q W``
counts for the remaining fraction, and the sum is divided by ``q W``. With integer
weights it is the mean of the lowest ``q W`` values of the pairs repeated by their
multiplicities, the boundary value counting fractionally (the expected shortfall, or
CVaR, of the weighted sample). It depends on the multiset only, so ties never depend
on their order; it is continuous in the values and never exceeds the weighted mean.
"Worst" follows the metric's direction: for a lower-is-better metric (median rank) it
is the mean of the highest decile.
"""

from __future__ import annotations

import numpy as np

#: The share of pairs in the tail.
TAIL = 0.1


def lower_mean(values: np.ndarray, weights: np.ndarray, q: float = TAIL) -> np.ndarray:
    """(n_rows,) weighted lower-``q`` means of ``values`` under each row of ``weights``.

    ``values``: (n,) finite; ``weights``: (n_rows, n) non-negative. NaN where a row's
    weights sum to zero.
    """
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v = v[order]
    w = np.asarray(weights, dtype=np.float64)[:, order]
    n_rows, n = w.shape
    out = np.full(n_rows, np.nan)
    if n == 0:
        return out
    cw = np.cumsum(w, axis=1)
    cwv = np.cumsum(w * v, axis=1)
    tau = q * cw[:, -1]
    ok = tau > 0
    # j: values whose whole weight lies within the tail; value j is the boundary one
    j = np.minimum(np.sum(cw <= tau[:, None], axis=1), n)
    rows = np.arange(n_rows)
    prev = np.where(j > 0, cw[rows, np.maximum(j - 1, 0)], 0.0)
    head = np.where(j > 0, cwv[rows, np.maximum(j - 1, 0)], 0.0)
    rest = np.maximum(tau - prev, 0.0) * v[np.minimum(j, n - 1)]
    out[ok] = (head[ok] + rest[ok]) / tau[ok]
    return out


def worst_mean(
    values: np.ndarray, weights: np.ndarray, higher_is_better: bool = True, q: float = TAIL
) -> np.ndarray:
    """The mean of the worst ``q`` of the weight: the lowest values, or the highest when
    lower is better."""
    if higher_is_better:
        return lower_mean(values, weights, q)
    return -lower_mean(-np.asarray(values, dtype=np.float64), weights, q)


def worst_mean_of(values: np.ndarray, higher_is_better: bool = True, q: float = TAIL) -> float:
    """The unweighted worst-``q`` mean; NaN when a value is undefined or there is none
    (the package's NaN policy, as `plismbench.stats.summary.median_of`)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        return float("nan")
    return float(worst_mean(v, np.ones((1, v.size)), higher_is_better, q)[0])
