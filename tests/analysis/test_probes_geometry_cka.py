"""Probes near chance / near 1; geometry and CKA against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from analyze_planted import moments_of, plant_exact

from plismbench.analysis import cka, geometry, probes


def probe_data(signal: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n_loc, n_st, n_sc, d = 40, 4, 3, 16
    loc = np.tile(np.arange(n_loc), n_st * n_sc)
    slide = np.repeat(np.arange(n_st * n_sc), n_loc)
    st, sc = slide // n_sc, slide % n_sc
    x = rng.standard_normal((n_loc, d))[loc] + 0.3 * rng.standard_normal((len(loc), d))
    x += signal * (rng.standard_normal((n_st, d))[st] + rng.standard_normal((n_sc, d))[sc])
    return x, st, sc, loc


def test_probes_near_chance_without_signal() -> None:
    rows = probes.probes(*probe_data(0.0), folds=4)
    for r in rows:
        assert abs(float(r["accuracy"]) - float(r["chance"])) < 0.1, r


def test_probes_near_one_with_strong_signal_and_deterministic() -> None:
    data = probe_data(2.0)
    rows = probes.probes(*data, folds=4)
    for r in rows:
        assert float(r["accuracy"]) > 0.97, r
    assert rows == probes.probes(*data, folds=4)


def test_probe_folds_never_share_a_location() -> None:
    from sklearn.model_selection import GroupKFold

    x, st, _, loc = probe_data(0.0)
    for train, test in GroupKFold(n_splits=4).split(x, st, loc):
        assert not set(loc[train]) & set(loc[test])


def test_cosines_equal_brute_force_over_all_pairs() -> None:
    x = np.random.default_rng(4).standard_normal((3, 2, 5, 6)) + 0.5
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    got = geometry.cosines(moments_of(x))
    n_st, n_sc, n_loc, d = x.shape
    flat = x.reshape(-1, d)
    st, sc, loc = np.meshgrid(np.arange(n_st), np.arange(n_sc), np.arange(n_loc), indexing="ij")
    st, sc, loc = st.ravel(), sc.ravel(), loc.ravel()
    sums: dict[str, list[float]] = {k: [] for k in ("all", "xscan", "xstain", "both", "random")}
    for i in range(len(flat)):
        for j in range(len(flat)):
            if i == j:
                continue
            c = float(flat[i] @ flat[j])
            sums["all"].append(c)
            same_slide = st[i] == st[j] and sc[i] == sc[j]
            if loc[i] == loc[j]:
                key = "xscan" if st[i] == st[j] else "xstain" if sc[i] == sc[j] else "both"
                sums[key].append(c)
            elif not same_slide:
                sums["random"].append(c)
    matched = sums["xscan"] + sums["xstain"] + sums["both"]
    assert got["anisotropy"] == pytest.approx(np.mean(sums["all"]))
    assert got["matched_cosine"] == pytest.approx(np.mean(matched))
    assert got["matched_cosine_cross_scanner"] == pytest.approx(np.mean(sums["xscan"]))
    assert got["matched_cosine_cross_staining"] == pytest.approx(np.mean(sums["xstain"]))
    assert got["matched_cosine_cross_both"] == pytest.approx(np.mean(sums["both"]))
    assert got["random_pair_cosine"] == pytest.approx(np.mean(sums["random"]))
    assert got["centred_cosine"] == pytest.approx(np.mean(matched) - np.mean(sums["random"]))


def test_effective_rank_and_participation_ratio_equal_brute_force() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((200, 12)) * np.linspace(3, 0.1, 12)
    spec = geometry.Spectrum(12)
    for block in np.array_split(x, 5):
        spec.add(block)
    sigma = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    p = sigma / sigma.sum()
    assert geometry.effective_rank(spec.eigenvalues()) == pytest.approx(
        np.exp(-(p * np.log(p)).sum()), rel=1e-5
    )
    lam = sigma**2
    assert geometry.participation_ratio(spec.eigenvalues()) == pytest.approx(
        lam.sum() ** 2 / (lam**2).sum(), rel=1e-5
    )
    iso = geometry.Spectrum(4)
    iso.add(np.vstack([np.eye(4), -np.eye(4)]))
    assert geometry.effective_rank(iso.eigenvalues()) == pytest.approx(4.0)


def test_geometry_of_a_planted_design() -> None:
    x = plant_exact(8, 3, 2, {"location": 1.0})
    got = geometry.cosines(moments_of(x))
    assert got["matched_cosine"] == pytest.approx(1.0)
    assert got["centred_cosine"] > 1.0  # random pairs of centred simplex rows are negative


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    h = np.eye(n) - 1.0 / n
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((kx * ky).sum() / (np.linalg.norm(kx) * np.linalg.norm(ky)))


def test_biased_linear_cka_equals_gram_form_and_is_rotation_invariant() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((60, 9))
    y = x[:, :5] @ rng.standard_normal((5, 7)) + 0.5 * rng.standard_normal((60, 7))
    assert cka.linear_cka(x, y, debiased=False) == pytest.approx(gram_cka(x, y))
    q, _ = np.linalg.qr(rng.standard_normal((9, 9)))
    assert cka.linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)


def test_principal_angles_zero_for_a_rotated_copy_and_large_for_unrelated() -> None:
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(4), 30)
    x = rng.standard_normal((120, 10)) + 2 * rng.standard_normal((4, 10))[labels]
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    angles = cka.principal_angles(x, x @ q, labels)
    assert len(angles) == 3
    np.testing.assert_allclose(angles, 0.0, atol=1e-4)
    other = rng.standard_normal((120, 10))
    assert cka.principal_angles(x, other, labels).max() > 30
