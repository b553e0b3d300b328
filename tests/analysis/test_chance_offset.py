"""Chance baselines, the unsaturated retrieval headline and the offset share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from analyze_planted import plant_exact, write_design

from plismbench.analysis import geometry, neighbours, variance


def test_noise_puts_each_component_at_its_chance_fraction_on_the_real_design() -> None:
    """13 stainings x 7 scanners of structureless noise: fractions = df / df_total."""
    rng = np.random.default_rng(0)
    n_loc = 8
    x = rng.standard_normal((13, 7, n_loc, 64))
    ss = variance.decompose_array(x)
    got = variance.fractions(ss)
    chance = variance.chance_fractions(n_loc, 13, 7)
    assert chance["location"] == pytest.approx(7 / (8 * 91 - 1))
    assert sum(chance[c] for c in variance.MAIN_COMPONENTS) == pytest.approx(1.0)
    for c in (*variance.MAIN_COMPONENTS, *variance.DETAIL_COMPONENTS):
        assert got[c] == pytest.approx(chance[c], rel=0.12), c
    adjusted = variance.adjusted_fractions(ss, n_loc, 13, 7)
    for c in ("location", "staining", "scanner", "staining:scanner"):
        assert abs(adjusted[c]) < 0.01, c
    offsets = variance.offset_shares(ss)  # noise: 1 / L
    for v in offsets.values():
        assert v == pytest.approx(1 / n_loc, rel=0.2)


def test_adjusted_fraction_equals_omega_squared_by_hand() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 5, 4)) + 2 * rng.standard_normal((1, 1, 5, 4))
    ss = variance.decompose_array(x)
    ms_r = ss["location:staining:scanner"] / (4 * 2 * 1)
    want = (ss["location"] - 4 * ms_r) / (ss["total"] + ms_r)
    assert variance.adjusted_fractions(ss, 5, 3, 2)["location"] == pytest.approx(want)


def brute_map_at_r(idx: np.ndarray, loc: np.ndarray) -> float:
    aps = []
    for q, row in enumerate(idx):
        hits, total = 0, 0.0
        for i, j in enumerate(row, start=1):
            if loc[j] == loc[q]:
                hits += 1
                total += hits / i
        aps.append(total / len(row))
    return float(np.mean(aps))


def test_map_at_r_equals_its_definition_and_random_rankings_give_its_chance() -> None:
    rng = np.random.default_rng(2)
    n_loc, n_slides = 6, 5
    n = n_loc * n_slides
    loc = np.tile(np.arange(n_loc), n_slides)
    labels = neighbours.Labels(loc, np.repeat(np.arange(n_slides), n_loc), loc * 0, loc * 0)
    r = n_slides - 1
    draws = []
    for _ in range(4000):
        idx = np.stack([rng.permutation(np.delete(np.arange(n), q))[:r] for q in range(n)])
        draws.append(neighbours.retrieval(idx, labels)["map_at_r"])
    assert neighbours.retrieval(idx, labels)["map_at_r"] == pytest.approx(brute_map_at_r(idx, loc))
    chance = neighbours.chance_map_at_r(n_loc, n_slides)
    assert np.mean(draws) == pytest.approx(chance, abs=3 * np.std(draws) / np.sqrt(len(draws)))


def test_spectrum_of_a_nearly_collinear_cloud_matches_float64_svd() -> None:
    """Anisotropy ~0.999: the float64, shifted scatter keeps the small eigenvalues."""
    rng = np.random.default_rng(3)
    d = 64
    x = np.ones(d) + 0.03 * rng.standard_normal((3000, d)) * np.linspace(0.2, 1.0, d)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    spec = geometry.Spectrum(d, block=700)
    spec.add(x[:1000])
    spec.add(x[1000:])
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    want = np.linalg.svd(xc, compute_uv=False) ** 2 / (len(x) - 1)
    got = spec.eigenvalues()
    np.testing.assert_allclose(got[: d - 1], want[: d - 1], rtol=1e-6)
    assert geometry.effective_rank(got) == pytest.approx(geometry.effective_rank(want), rel=1e-6)


def test_a_pure_per_slide_offset_is_reported_as_one_and_corrected_retrieval_is_perfect(
    tmp_path: Path,
) -> None:
    """Planted: the nuisance is a constant vector per slide (same norm, so normalising
    keeps it a pure offset). Raw retrieval fails, offset-corrected retrieval is perfect."""
    from plismbench.analysis import analyze

    weights = {"location": 1.0, "staining": 1.6, "scanner": 1.2, "staining:scanner": 0.8}
    write_design(tmp_path / "f", "offset", plant_exact(20, 4, 3, weights))
    analyze(["offset"], tmp_path / "f", tmp_path / "a", k=4, folds=2, probe_max_iter=50,
            robustness_index=False)  # fmt: skip
    off = pl.read_csv(tmp_path / "a" / "offset.csv")
    got = dict(zip(off["quantity"], off["value"], strict=True))
    for nuisance in ("staining", "scanner", "slide"):
        assert got[f"offset_share_{nuisance}"] >= 0.95
    assert got["top_1_offset_corrected"] >= 0.99
    assert got["map_at_r_offset_corrected"] >= 0.99
    assert got["top_1"] < 0.5  # the offset hides the matches before correction
    nb = pl.read_csv(tmp_path / "a" / "neighbours.csv")
    headline = nb.filter(pl.col("quantity") == "map_at_r").row(0, named=True)
    assert headline["k"] == 11 and headline["chance"] == pytest.approx(
        neighbours.chance_map_at_r(20, 12)
    )
    var = pl.read_csv(tmp_path / "a" / "variance.csv")
    loc = var.filter(pl.col("component") == "location").row(0, named=True)
    assert loc["chance"] == pytest.approx(19 / (20 * 12 - 1))
