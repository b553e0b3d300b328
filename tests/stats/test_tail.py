"""The worst-10% mean (`plismbench.stats.tail`) against a brute force that repeats and sorts.

Brute force: repeat every value by its integer weight, sort, take the lowest
``floor(q W)`` values fully and the next one for the fraction ``q W - floor(q W)``,
divide by ``q W``.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import pairs_frame

from plismbench.stats.bootstrap import Bootstrap
from plismbench.stats.tail import lower_mean, worst_mean, worst_mean_of
from plismbench.store.design import design_from_metrics


def brute(values: np.ndarray, row: np.ndarray, q: float = 0.1) -> float:
    rep = np.sort(np.repeat(values, row))
    if rep.size == 0:
        return float("nan")
    k = q * rep.size
    full = int(np.floor(k))
    frac = k - full
    total = rep[:full].sum() + (frac * rep[full] if frac > 0 else 0.0)
    return float(total / k)


@pytest.mark.parametrize("seed", range(4))
def test_weighted_rows_match_the_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # ties: values on a grid of 1/8, as accuracies on few tiles
    values = np.round(rng.normal(0.5, 0.3, n) * 8) / 8
    weights = rng.integers(0, 4, (50, n))
    weights[0] = 0  # an empty resample
    weights[1] = 1
    got = lower_mean(values, weights)
    want = np.array([brute(values, row) for row in weights])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isnan(got[0])


def test_unit_weights_are_the_mean_of_the_lowest_tenth_and_ties_do_not_matter() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=100)
    assert worst_mean_of(v) == pytest.approx(np.sort(v)[:10].mean())
    tied = np.array([0.0] * 5 + [1.0] * 15)  # the boundary falls inside a tie
    assert worst_mean_of(tied) == 0.0
    assert worst_mean_of(rng.permutation(tied)) == 0.0
    # worst of a lower-is-better metric: the highest tenth
    assert worst_mean_of(v, higher_is_better=False) == pytest.approx(np.sort(v)[-10:].mean())


def test_perfect_model_noise_and_nan() -> None:
    assert worst_mean_of(np.ones(4095)) == 1.0  # a perfect model's tail is perfect
    noise = np.random.default_rng(2).uniform(0, 1, 100_000)
    assert worst_mean_of(noise) == pytest.approx(0.05, abs=0.002)  # U(0, 1): q / 2
    assert np.isnan(worst_mean_of(np.array([0.5, np.nan, 0.7])))
    assert np.isnan(worst_mean_of(np.array([])))


def test_bootstrap_replicates_match_the_brute_force_per_pair_type() -> None:
    metrics = pairs_frame(4, 3)
    d = design_from_metrics(metrics)
    boot = Bootstrap(d, n_boot=30, seed=3)
    v = np.round(np.random.default_rng(4).uniform(0, 1, d.n_pairs) * 10) / 10
    for better in (True, False):
        reps = boot.worst_by_type(v, better)
        for ptype, r in reps.items():
            m = d.mask(ptype)
            sign = 1.0 if better else -1.0
            want = [sign * brute(sign * v[m], row) for row in boot.weights[:, m]]
            np.testing.assert_allclose(r, want, rtol=1e-12, atol=1e-12)
            assert r.shape == (boot.n_replicates,)
    # the unit-weight row gives the estimate
    assert worst_mean(v, np.ones((1, v.size)))[0] == pytest.approx(worst_mean_of(v))
