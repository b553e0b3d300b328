"""Pair weights of the Bootstrap: jackknife rows by brute force, and a compact type that
holds the largest product of unit counts (k1 k2 m1 m2)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import pairs_frame

from plismbench.stats import Bootstrap, design_from_metrics
from plismbench.stats import bootstrap as bootstrap_module
from plismbench.stats.bootstrap import hierarchical_weights, jackknife_weights, pair_weights


def test_jackknife_rows_leave_one_unit_out() -> None:
    design = design_from_metrics(pairs_frame(4, 3))
    w = jackknife_weights(design)
    sa, sb = design.staining_of[design.pair_a], design.staining_of[design.pair_b]
    ca, cb = design.scanner_of[design.pair_a], design.scanner_of[design.pair_b]
    assert w.shape == (4 + 3, design.n_pairs)
    for i in range(4):
        np.testing.assert_array_equal(w[i], ((sa != i) & (sb != i)).astype(np.int64))
    for j in range(3):
        np.testing.assert_array_equal(w[4 + j], ((ca != j) & (cb != j)).astype(np.int64))


def test_bootstrap_weights_are_resamples_then_jackknife() -> None:
    design = design_from_metrics(pairs_frame(4, 3))
    boot = Bootstrap(design, n_boot=25, seed=5)
    want = np.vstack([hierarchical_weights(design, 25, 5), jackknife_weights(design)])
    np.testing.assert_array_equal(boot.weights, want)
    assert boot.n_jack == (4, 3) and boot.n_replicates == 25 + 7
    naive = Bootstrap(design, n_boot=25, seed=5, naive=True)
    np.testing.assert_array_equal(naive.weights, pair_weights(design.n_pairs, 25, 5))
    assert naive.n_jack == (0, 0) and naive.n_replicates == 25


def test_compact_weights_hold_the_largest_product(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit counts of 15 make a cross-both pair weigh 15^4 = 50,625: past int16."""
    design = design_from_metrics(pairs_frame(3, 3))

    def heavy(design_: object, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.full((n_boot, 3), 15, dtype=np.int64), np.full((n_boot, 3), 15, np.int64))

    monkeypatch.setattr(bootstrap_module, "resampled_units", heavy)
    boot = Bootstrap(design, n_boot=2)
    cross_both = design.mask("cross-scanner-cross-staining")
    assert (boot.weights[:2, cross_both] == 15**4).all()
    assert (boot.weights[:2, design.mask("cross-scanner")] == 15**3).all()
