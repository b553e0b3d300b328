"""Variance decomposition: exact planted components and a per-dimension ANOVA oracle."""

from __future__ import annotations

import numpy as np
import pytest
from analyze_planted import COMPONENTS, expected_fractions, moments_of, plant_exact

from plismbench.analysis import variance


def oracle(x: np.ndarray) -> dict[str, float]:
    """Brute force: per dimension, sums of squares of the seven ANOVA effects, summed."""
    n_st, n_sc, n_loc, d = x.shape
    out = dict.fromkeys((*COMPONENTS, "total"), 0.0)
    for j in range(d):
        y = x[..., j]  # (S, C, L)
        g = y.mean()
        ms, mc, ml = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
        msc, msl, mcl = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
        for s in range(n_st):
            for c in range(n_sc):
                for loc in range(n_loc):
                    out["total"] += (y[s, c, loc] - g) ** 2
                    out["location"] += (ml[loc] - g) ** 2
                    out["staining"] += (ms[s] - g) ** 2
                    out["scanner"] += (mc[c] - g) ** 2
                    out["staining:scanner"] += (msc[s, c] - ms[s] - mc[c] + g) ** 2
                    out["location:staining"] += (msl[s, loc] - ms[s] - ml[loc] + g) ** 2
                    out["location:scanner"] += (mcl[c, loc] - mc[c] - ml[loc] + g) ** 2
                    out["location:staining:scanner"] += (
                        y[s, c, loc] - msc[s, c] - msl[s, loc] - mcl[c, loc]
                        + ms[s] + mc[c] + ml[loc] - g
                    ) ** 2  # fmt: skip
    return out


def test_matches_brute_force_anova_on_random_data() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 4)) + np.arange(4)
    ss = variance.decompose(moments_of(x))
    want = oracle(x)
    for name in (*COMPONENTS, "total"):
        assert ss[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), name
    assert ss["location:condition"] == pytest.approx(sum(want[c] for c in COMPONENTS[4:]), rel=1e-9)


@pytest.mark.parametrize(
    "weights",
    [
        {"location": 0.9, "staining": 0.3, "scanner": 0.2, "staining:scanner": 0.1,
         "location:staining:scanner": 0.25},
        {"location": 0.2, "staining": 0.8, "location:staining": 0.4, "location:scanner": 0.3},
        {"scanner": 1.0, "location": 0.05},
    ],
)  # fmt: skip
def test_recovers_planted_fractions(weights: dict[str, float]) -> None:
    x = plant_exact(10, 4, 3, weights)
    frac = variance.fractions(variance.decompose(moments_of(x)))
    want = expected_fractions(weights)
    for name in COMPONENTS:
        assert frac[name] == pytest.approx(want[name], abs=1e-9), name
    main = sum(frac[c] for c in variance.MAIN_COMPONENTS)
    assert main == pytest.approx(1.0, abs=1e-12)


def test_gaussian_planted_components_within_001() -> None:
    """Random (not orthogonal) components: fractions within 0.01 of their expectations."""
    rng = np.random.default_rng(3)
    n_st, n_sc, n_loc, d = 5, 4, 400, 256
    sd = {"location": 1.0, "staining": 0.6, "scanner": 0.4, "noise": 0.5}

    def comp(shape: tuple[int, ...], s: float) -> np.ndarray:
        return rng.standard_normal((*shape, d)) * s / np.sqrt(d)

    x = (
        comp((1, 1, n_loc), sd["location"]) + comp((n_st, 1, 1), sd["staining"])
        + comp((1, n_sc, 1), sd["scanner"]) + comp((n_st, n_sc, n_loc), sd["noise"])
    )  # fmt: skip
    frac = variance.fractions(variance.decompose(moments_of(x)))
    # Expected sums of squares from the degrees of freedom of each effect.
    n = n_st * n_sc * n_loc
    e = sd["noise"] ** 2
    want = {
        "location": (n_loc - 1) * (n_st * n_sc * sd["location"] ** 2 + e),
        "staining": (n_st - 1) * (n_sc * n_loc * sd["staining"] ** 2 + e),
        "scanner": (n_sc - 1) * (n_st * n_loc * sd["scanner"] ** 2 + e),
    }
    total = sum(want.values()) + (n - 1 - (n_loc - 1) - (n_st - 1) - (n_sc - 1)) * e
    # Stainings and scanners are few levels: compare with their realised spread instead.
    for name in ("location",):
        assert frac[name] == pytest.approx(want[name] / total, abs=0.01)
    assert frac["staining:scanner"] < 0.01
    assert frac["location:condition"] == pytest.approx(
        1 - frac["location"] - frac["staining"] - frac["scanner"] - frac["staining:scanner"],
        abs=1e-12,
    )


def test_subsets_are_consistent_with_the_full_decomposition() -> None:
    x = np.random.default_rng(5).standard_normal((3, 4, 6, 5))
    m = moments_of(x)
    ss = variance.decompose(m)
    rows = variance.decompose_subsets(m)
    pooled = {(r["subset"], r["component"]): r["ss"] for r in rows if r["group"] == "pooled"}
    assert pooled[("cross-scanner", "location")] == pytest.approx(
        ss["location"] + ss["location:staining"]
    )
    assert pooled[("cross-scanner", "scanner")] == pytest.approx(
        ss["scanner"] + ss["staining:scanner"]
    )
    assert pooled[("cross-staining", "location")] == pytest.approx(
        ss["location"] + ss["location:scanner"]
    )
    assert pooled[("cross-staining", "location:staining")] == pytest.approx(
        ss["location:staining"] + ss["location:staining:scanner"]
    )
    # One staining alone, by brute force: a two-way L x C ANOVA.
    y = x[1]  # (C, L, d)
    g = y.mean(axis=(0, 1))
    loc = y.shape[0] * ((y.mean(axis=0) - g) ** 2).sum()
    scan = y.shape[1] * ((y.mean(axis=1) - g) ** 2).sum()
    got = {
        r["component"]: r["ss"]
        for r in rows
        if r["subset"] == "cross-scanner" and r["group"] == "S1"
    }
    assert got["location"] == pytest.approx(loc)
    assert got["scanner"] == pytest.approx(scan)


def test_decompose_array_equals_the_streamed_moments() -> None:
    x = plant_exact(6, 3, 2, {"location": 0.7, "scanner": 0.4, "staining:scanner": 0.2})
    got = variance.fractions(variance.decompose_array(x))
    want = expected_fractions({"location": 0.7, "scanner": 0.4, "staining:scanner": 0.2})
    for name in COMPONENTS:
        assert got[name] == pytest.approx(want[name], abs=1e-9)
    with pytest.raises(ValueError, match="expected"):
        variance.decompose_array(x[0])
