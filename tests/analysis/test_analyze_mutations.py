"""Holes found by mutation testing: grouped probe folds, per-slide CKA, angle labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plismbench.analysis import cka, compute, probes
from plismbench.data.catalogue import SlideName
from plismbench.store.design import crossed_design


def test_probe_cannot_memorise_tissue_across_folds() -> None:
    """Only a location x staining interaction: a probe that saw a location's tiles in
    training reads the staining off them (near 1); with folds grouped by location it is
    at chance. Ungrouped folds (e.g. one group per row) would report near 1."""
    rng = np.random.default_rng(0)
    n_loc, n_st, n_sc, d = 12, 3, 3, 40
    slide = np.repeat(np.arange(n_st * n_sc), n_loc)
    loc = np.tile(np.arange(n_loc), n_st * n_sc)
    st, sc = slide // n_sc, slide % n_sc
    inter = rng.standard_normal((n_loc, n_st, d))
    x = inter[loc, st] + 0.05 * rng.standard_normal((len(loc), d))
    # Rows in random order, so that contiguous (ungrouped) folds mix every class.
    perm = rng.permutation(len(loc))
    x, st, sc, loc = x[perm], st[perm], sc[perm], loc[perm]
    rows = {r["target"]: r for r in probes.probes(x, st, sc, loc, folds=3)}
    assert float(rows["staining"]["accuracy"]) < 0.6, rows["staining"]
    # The same data is memorisable: held-out rows of seen locations are read perfectly.
    ungrouped = probes.probe_accuracy(x, st, np.arange(len(st)), folds=3)[0]
    assert ungrouped > 0.75


def _design() -> tuple[object, np.ndarray, np.ndarray]:
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s in range(3) for c in range(2)]
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 9, 5)) + 2 * rng.standard_normal((6, 1, 5))
    b = a @ rng.standard_normal((5, 4)) + rng.standard_normal((6, 9, 4))
    return crossed_design(names), a, b


def test_compare_rows_equal_their_definitions() -> None:
    design, a, b = _design()
    out = compute.compare(a, b, design)  # type: ignore[arg-type]
    rows = {(r["scope"], r["group"]): r["cka"] for r in out["cka"]}
    xa, xb = a.reshape(-1, 5), b.reshape(-1, 4)

    def concat(x: np.ndarray, sel: list[int]) -> np.ndarray:
        """Each location's rows over the slides ``sel``, side by side: one sample each."""
        return np.concatenate([x[i] for i in sel], axis=1)

    everything = list(range(6))
    assert rows[("all", "all")] == pytest.approx(
        cka.linear_cka(concat(a, everything), concat(b, everything))
    )
    for i in range(6):
        assert rows[("slide", f"S{i // 2}_C{i % 2}")] == pytest.approx(cka.linear_cka(a[i], b[i]))
    for s in range(3):
        sel = [s * 2, s * 2 + 1]
        want = cka.linear_cka(concat(a, sel), concat(b, sel))
        assert rows[("staining", f"S{s}")] == pytest.approx(want)
    for c in range(2):
        sel = [c, c + 2, c + 4]
        want = cka.linear_cka(concat(a, sel), concat(b, sel))
        assert rows[("scanner", f"C{c}")] == pytest.approx(want)
    slide = np.repeat(np.arange(6), 9)
    for nuisance, of in (("staining", slide // 2), ("scanner", slide % 2)):
        got = [r["angle_deg"] for r in out["angles"] if r["nuisance"] == nuisance]
        np.testing.assert_allclose(got, cka.principal_angles(xa, xb, of), atol=1e-9)
    assert sum(r["nuisance"] == "staining" for r in out["angles"]) == 2  # 3 stainings - 1


def test_subset_fractions_are_shares_of_their_group_total() -> None:
    from analyze_planted import moments_of

    from plismbench.analysis import variance

    x = np.random.default_rng(2).standard_normal((3, 4, 6, 5))
    rows = variance.decompose_subsets(moments_of(x))
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in rows:
        key = (str(r["subset"]), str(r["group"]))
        groups.setdefault(key, []).append((float(str(r["ss"])), float(str(r["fraction"]))))
    assert len(groups) == (3 + 1) + (4 + 1)
    for key, members in groups.items():
        total = sum(ss for ss, _ in members)
        for ss, fraction in members:
            assert fraction == pytest.approx(ss / total, rel=1e-12), key


def test_sampled_tiles_stay_registered_across_slides(tmp_path: Path) -> None:
    """Location-dominated features: every neighbour is the same location in another slide,
    which holds only if each slide's sampled rows are the same locations in one order."""
    import polars as pl
    from analyze_planted import plant_exact, write_design

    from plismbench.analysis import analyze

    x = plant_exact(10, 3, 2, {"location": 1.0, "staining": 0.2, "scanner": 0.2})
    write_design(tmp_path / "f", "m", x)
    out = tmp_path / "out"
    analyze(["m"], tmp_path / "f", out, k=4, folds=2, layers="none", robustness_index=False,
            sample_tiles=8)  # fmt: skip
    table = pl.read_csv(out / "m" / "neighbours.csv")
    got = dict(zip(table["quantity"], table["value"], strict=True))
    assert got["same_location"] == pytest.approx(1.0) and got["global_top_k"] == pytest.approx(1.0)
