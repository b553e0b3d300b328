"""RowThresholds against a brute force: counts above hi and band members, in any order."""

from __future__ import annotations

import numpy as np
import pytest

from plismbench.metrics.survivors import RowThresholds


def _brute(lo, hi, q, c, v):
    n, m = lo.shape
    counts = np.zeros((n, m), dtype=np.int64)
    band = set()
    for qq, cc, vv in zip(q, c, v, strict=True):
        for part in range(m):
            if vv >= hi[qq, part]:
                counts[qq, part] += 1
            elif vv >= lo[qq, part]:
                band.add((int(qq), part, int(cc)))
    return counts, band


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunks", [1, 3])
def test_counts_and_band_equal_brute_force(seed: int, chunks: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, k = 30, 7, 2000
    centre = rng.choice(np.linspace(-0.5, 0.9, 6), size=(n, m)).astype(np.float32)
    centre[:, 1] = centre[:, 0]  # identical thresholds of two partners
    width = np.float32(1e-3)
    lo, hi = centre - width, centre + width  # overlapping and nested bands too
    hi[:, 2] = lo[:, 2] + np.float32(5e-3)
    q = rng.integers(0, n, k)
    # values on edges, inside bands and far from them
    pick = rng.integers(0, m, k)
    v = np.where(rng.random(k) < 0.5, hi[q, pick], lo[q, pick]).astype(np.float32)
    v[::3] = rng.uniform(-1, 1, len(v[::3])).astype(np.float32)
    v[1::5] = (lo[q, pick] + width)[1::5]
    c = rng.permutation(k)  # distinct candidates
    order = rng.permutation(k)  # any order, not only row order
    table = RowThresholds(lo, hi)
    for part in np.array_split(order, chunks):
        table.place(q[part], c[part], v[part])
    # only survivors inside some band need the exact comparison with every threshold
    in_band = ((v[:, None] >= lo[q]) & (v[:, None] < hi[q])).any(axis=1)
    assert sum(len(r[0]) for r in table.rest) == int(in_band.sum())
    counts, (bq, bp, bc) = table.counts()
    want_counts, want_band = _brute(lo, hi, q, c, v)
    np.testing.assert_array_equal(counts, want_counts)
    got = list(zip(bq.tolist(), bp.tolist(), bc.tolist(), strict=True))
    assert len(got) == len(set(got))
    assert set(got) == want_band


def test_no_survivors() -> None:
    lo = np.zeros((3, 2), dtype=np.float32)
    table = RowThresholds(lo, lo + np.float32(1e-3))
    counts, (bq, _, _) = table.counts()
    assert not counts.any() and len(bq) == 0
