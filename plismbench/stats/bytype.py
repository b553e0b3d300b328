"""Weighted quantiles of one metric over every pair type and over all pairs, from one gather.

The resample weights are gathered once, grouped by pair type and in value order within
each group, behind a zero column; one cumulative sum along each row then serves every
group: a group's cumulative weights are the row's minus its *base* (the sum before the
group), so all groups' quantile positions are found by one search along the whole row
with targets shifted by their bases. ``all`` needs no sum of its own: through its
first ``k`` values (in value order), the weight is the sum over groups of the row's
cumulative sum at each group's last column among them, minus the bases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plismbench.stats.wquantiles import (
    Workspace,
    count_at_most,
    flat_reader,
    interpolate,
    prefix_sums,
    targets,
)


def quantiles_by_group(
    weights: np.ndarray, zero_column: int, codes: np.ndarray, names: Sequence[str],
    values: np.ndarray, qs: Sequence[float], dtype: type, work: Workspace | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Per group name: (n_rows, len(qs)) weighted quantiles of its finite ``values``; and
    those of every finite value.

    ``weights``: (n_rows, >= n_pairs) non-negative multiplicities whose ``zero_column`` is
    all zero; ``codes``: (n_pairs,) each pair's group, an index into ``names``.
    """
    order = np.flatnonzero(np.isfinite(values))
    order = order[np.argsort(values[order], kind="stable")]
    code = codes[order]
    grouped = order[np.argsort(code, kind="stable")]
    cum = prefix_sums(weights, np.concatenate([[zero_column], grouped]), dtype, work)
    sizes = np.bincount(code, minlength=len(names))
    starts = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    base = cum[:, starts - 1].astype(np.int64)  # (n_rows, n_groups)
    totals = cum[:, starts + sizes - 1] - base  # an empty group: its base minus itself

    per = [targets(totals[:, g], qs) for g in range(len(names))]
    shifted = np.concatenate([(t.stacked() + base[t.ok, g]).ravel() for g, t in enumerate(per)])
    rows = np.concatenate([t.rows.ravel() for t in per])
    counts = count_at_most(flat_reader(cum, rows), cum.shape[1], shifted)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for g, (name, t) in enumerate(zip(names, per, strict=True)):
        size = t.rows.size
        local = counts[offset : offset + size].reshape(t.rows.shape) - starts[g]
        v = values[grouped[starts[g] - 1 : starts[g] - 1 + sizes[g]]].astype(np.float64)
        out[name] = interpolate(v, t, local)
        offset += size

    # all: column of each group's last value among the first k + 1 in value order.
    last = starts[:, None] - 1 + np.cumsum(code[None, :] == np.arange(len(names))[:, None], 1)
    t_all = targets(cum[:, -1], qs)
    flat = cum.reshape(-1)
    offsets = t_all.rows * cum.shape[1]

    def at(idx: np.ndarray) -> np.ndarray:
        acc = np.zeros(idx.shape, dtype=np.int64)
        for cols in last:
            acc += np.take(flat, offsets + np.take(cols, idx))
        return acc

    shifted_all = t_all.stacked() + base.sum(axis=1)[t_all.ok]
    every = interpolate(
        values[order].astype(np.float64), t_all, count_at_most(at, len(order), shifted_all)
    )
    return out, every
