"""The hierarchical bootstrap: weights against an explicit resampler, quantiles against
np.quantile of repeated values, and coverage of its intervals on synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from synthetic import additive_values, pairs_frame

from plismbench.stats import Bootstrap, design_from_metrics, results_ci, weighted_quantiles
from plismbench.stats.bootstrap import hierarchical_weights, unit_counts


def test_weighted_quantiles_equal_quantiles_of_repeated_values() -> None:
    rng = np.random.default_rng(0)
    values = np.round(rng.random(25), 2)  # ties included
    weights = rng.integers(0, 4, size=(60, 25))
    weights[0] = 0
    got = weighted_quantiles(values, weights, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.isnan(got[0]).all()
    for row, w in zip(got[1:], weights[1:], strict=True):
        want = np.quantile(np.repeat(values, w), [0.0, 0.25, 0.5, 0.75, 1.0])
        np.testing.assert_allclose(row, want, rtol=0, atol=1e-12)


def test_hierarchical_weights_equal_an_explicit_resampler() -> None:
    """Build the resampled world: every drawn staining copy x scanner copy is a slide;
    count each of its pairs on the observed pair it reproduces. A pair across two copies
    of one staining is a cross-staining pair there, which no observed pair reproduces
    (its two slides look like a same-staining pair): it is dropped, never counted as
    cross-scanner (that was the squared weight, k^2 m1 m2, issue 19)."""
    frame = pairs_frame(4, 3)
    design = design_from_metrics(frame)
    weights = hierarchical_weights(design, n_boot=20, seed=7)
    rng = np.random.default_rng(7)
    st_draws = rng.integers(0, 4, size=(20, 4))
    sc_draws = rng.integers(0, 3, size=(20, 3))
    index = {frozenset(key): p for p, key in enumerate(design.pair_keys())}
    slide = {
        (int(design.staining_of[k]), int(design.scanner_of[k])): s
        for k, s in enumerate(design.slide_ids)
    }
    for b in range(20):
        copies = [(i, int(st), j, int(sc)) for i, st in enumerate(st_draws[b])
                  for j, sc in enumerate(sc_draws[b])]  # fmt: skip
        want = np.zeros(design.n_pairs, dtype=np.int64)
        for (i1, st1, j1, sc1), (i2, st2, j2, sc2) in itertools.combinations(copies, 2):
            if (i1 == i2) != (st1 == st2) or (j1 == j2) != (sc1 == sc2):
                continue  # two copies of one unit: not observable as this pair type
            want[index[frozenset((slide[st1, sc1], slide[st2, sc2]))]] += 1
        np.testing.assert_array_equal(weights[b], want)


def test_each_unit_counts_once_per_pair_type() -> None:
    """The closed form: k_s m1 m2 (cross-scanner), k1 k2 m_c (cross-staining), k1 k2 m1 m2."""
    design = design_from_metrics(pairs_frame(5, 4))
    w = hierarchical_weights(design, n_boot=30, seed=3)
    rng = np.random.default_rng(3)
    k = unit_counts(5, 30, rng)
    m = unit_counts(4, 30, rng)
    sa, sb = design.staining_of[design.pair_a], design.staining_of[design.pair_b]
    ca, cb = design.scanner_of[design.pair_a], design.scanner_of[design.pair_b]
    for p in range(design.n_pairs):
        units = k[:, sa[p]] * (k[:, sb[p]] if sa[p] != sb[p] else 1)
        units = units * m[:, ca[p]] * (m[:, cb[p]] if ca[p] != cb[p] else 1)
        np.testing.assert_array_equal(w[:, p], units)


def test_unit_weights_give_the_plain_aggregates() -> None:
    frame = pairs_frame(3, 3)
    values = additive_values(frame, np.random.default_rng(1))
    metrics = frame.with_columns(cosine_similarity=values)
    table = results_ci(metrics, ["cosine_similarity"], n_boot=50)
    for r in table.iter_rows(named=True):
        sub = values if r["pair_type"] == "all" else values[frame["pair_type"] == r["pair_type"]]
        med = np.median(sub)
        assert r["median"] == pytest.approx(med)
        assert r["median_ci_low"] < r["median_ci_high"]


def test_coverage_is_nominal_and_the_pair_bootstrap_is_not() -> None:
    """200 synthetic data sets (6 stainings x 4 scanners, strong unit effects, true median
    0): the 95% intervals cover 0 in 95% of them within 3 simulation SEs (+-4.6 points);
    the naive pair bootstrap covers far less."""
    frame = pairs_frame(6, 4)
    design = design_from_metrics(frame)
    rng = np.random.default_rng(2024)
    n_sim, n_boot = 200, 200
    ptypes = ("all", "cross-scanner-cross-staining", "cross-staining")
    hits = dict.fromkeys(ptypes, 0)
    naive_hits = 0
    for sim in range(n_sim):
        values = additive_values(frame, rng)
        boot = Bootstrap(design, n_boot=n_boot, seed=sim)
        for ptype in ptypes:
            sub = values[design.mask(ptype)]
            lo, hi = boot.ci(float(np.median(sub)), boot.median(values, ptype))
            hits[ptype] += lo <= 0.0 <= hi
        naive = Bootstrap(design, n_boot=n_boot, seed=sim, naive=True)
        lo, hi = naive.ci(float(np.median(values)), naive.median(values, "all"))
        naive_hits += lo <= 0.0 <= hi
    se = np.sqrt(0.95 * 0.05 / n_sim)
    for ptype, hit in hits.items():
        assert abs(hit / n_sim - 0.95) <= 3 * se, (ptype, hit / n_sim)
    assert naive_hits / n_sim < 0.6


def test_add_ci_columns_to_results() -> None:
    from plismbench.metrics.aggregate import aggregate
    from plismbench.stats.summary import CI_COLUMNS, TAIL_COLUMNS, add_ci_columns

    frame = pairs_frame(3, 3)
    metrics = frame.with_columns(cosine_similarity=additive_values(frame, np.random.default_rng(3)))
    results = aggregate(metrics, ["cosine_similarity"])
    table = add_ci_columns(results, metrics, ["cosine_similarity"], n_boot=50)
    assert table.columns == [*results.columns, *CI_COLUMNS, *TAIL_COLUMNS]
    assert table.select(results.columns).equals(results)
    assert table["median_ci_low"].is_not_null().all()
