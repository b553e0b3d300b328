"""Debiased CKA: brute-force U-statistic, unrelated models near 0, a rotated copy at 1."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from analyze_planted import moments_of  # noqa: F401  (puts the planted helpers on the path)

from plismbench.analysis import cka
from plismbench.analysis.compute import compare
from plismbench.data.catalogue import SlideName
from plismbench.store.design import crossed_design


def brute_hsic_u(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012) U-statistic, summed over every tuple of distinct indices."""
    n = k.shape[0]
    t1 = sum(k[i, j] * l_[i, j] for i, j in permutations(range(n), 2)) / (n * (n - 1))
    t2 = sum(k[i, j] * l_[q, r] for i, j, q, r in permutations(range(n), 4))
    t3 = sum(k[i, j] * l_[i, q] for i, j, q in permutations(range(n), 3))
    return t1 + t2 / (n * (n - 1) * (n - 2) * (n - 3)) - 2 * t3 / (n * (n - 1) * (n - 2))


def test_unbiased_hsic_equals_the_brute_force_u_statistic() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    k, l_ = cka.gram(x), cka.gram(y + x[:, :3])
    assert cka.hsic_unbiased(k, l_) == pytest.approx(brute_hsic_u(k, l_), rel=1e-10)
    # The biased one against its textbook form tr(KHLH) / (n-1)^2.
    h = np.eye(7) - 1 / 7
    assert cka.hsic_biased(k, l_) == pytest.approx(np.trace(k @ h @ l_ @ h) / 36, rel=1e-10)


def test_unrelated_matrices_give_zero_debiased_and_p_over_n_plus_p_biased() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((460, 1536)), rng.standard_normal((460, 1536))
    assert abs(cka.linear_cka(x, y)) < 0.05
    assert cka.linear_cka(x, y, debiased=False) == pytest.approx(1536 / (460 + 1536), abs=0.01)
    q, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    assert cka.linear_cka(x[:, :64], 3.0 * x[:, :64] @ q) == pytest.approx(1.0, abs=1e-10)


def test_permutation_null_is_a_shuffle_of_locations() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 8))
    k, l_ = cka.gram(x), cka.gram(x @ rng.standard_normal((8, 8)))
    out = cka.cka_with_null(k, l_, permutations=50, seed=3)
    assert out["cka"] == pytest.approx(cka.cka_from_grams(k, l_))
    assert out["p_value"] == pytest.approx(1 / 51)  # related: no shuffle reaches it
    # The fast null equals recomputing CKA on shuffled kernels.
    p = np.random.default_rng(3).permutation(30)
    want = cka.cka_from_grams(k, l_[np.ix_(p, p)])
    one = cka.cka_with_null(k, l_, permutations=1, seed=3)
    assert one["cka_null"] == pytest.approx(want)


def _design(n_st: int, n_sc: int):  # type: ignore[no-untyped-def]
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s in range(n_st) for c in range(n_sc)]
    return crossed_design(names)


def _model(rng: np.random.Generator, n_st: int, n_sc: int, n_loc: int, d: int) -> np.ndarray:
    """(slides, locations, d) unit rows with location, staining and scanner structure."""
    loc = rng.standard_normal((n_loc, d))
    st = 0.7 * rng.standard_normal((n_st, d))
    sc = 0.5 * rng.standard_normal((n_sc, d))
    x = np.stack(
        [
            loc + st[s] + sc[c] + 0.3 * rng.standard_normal((n_loc, d))
            for s in range(n_st)
            for c in range(n_sc)
        ]
    )
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("grid", [(2, 2), (4, 3)])
def test_unrelated_models_score_near_zero_in_every_scope(grid: tuple[int, int]) -> None:
    rng = np.random.default_rng(4)
    a = _model(rng, *grid, 80, 256)
    b = _model(rng, *grid, 80, 384)
    rows = compare(a, b, _design(*grid))["cka"]
    assert {r["scope"] for r in rows} == {"all", "staining", "scanner", "slide"}
    for r in rows:
        assert abs(r["cka"]) < 0.05, r
        assert r["n_samples"] == 80  # distinct locations, never repeated
    # The biased estimator reports large values for the same unrelated models.
    assert max(r["cka_biased"] for r in rows) > 0.3


def test_a_rotated_copy_scores_one_in_every_scope_and_beats_its_null() -> None:
    rng = np.random.default_rng(5)
    a = _model(rng, 2, 2, 40, 32)
    q, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    rows = compare(a, a @ q, _design(2, 2))
    for r in rows["cka"]:
        assert r["cka"] == pytest.approx(1.0, abs=1e-9)
        assert r["cka_biased"] == pytest.approx(1.0, abs=1e-9)
        assert abs(r["cka_null"]) < 0.1 and r["p_value"] < 0.01
    for r in rows["angles"]:
        assert r["angle_deg"] == pytest.approx(0.0, abs=1e-3)
        assert r["null_random_deg"] > 60


def test_angle_null_shows_what_independent_models_with_the_same_effect_give() -> None:
    """Unrelated models that both separate stainings: small angles, and so is the null."""
    rng = np.random.default_rng(6)
    a = _model(rng, 4, 3, 60, 64)
    b = _model(rng, 4, 3, 60, 96)
    rows = [r for r in compare(a, b, _design(4, 3))["angles"] if r["nuisance"] == "staining"]
    assert len(rows) == 3
    for r in rows:
        assert r["angle_deg"] < 45 and r["null_shuffled_deg"] < 45 < r["null_random_deg"]
