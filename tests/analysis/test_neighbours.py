"""FAISS neighbourhoods against brute force; croma's RI against its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plismbench.analysis import neighbours, pathorob


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_knn(x: np.ndarray, k: int) -> np.ndarray:
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def design_labels(n_loc: int, n_st: int, n_sc: int) -> neighbours.Labels:
    slide = np.repeat(np.arange(n_st * n_sc), n_loc)
    return neighbours.Labels(
        location=np.tile(np.arange(n_loc), n_st * n_sc),
        slide=slide,
        staining=slide // n_sc,
        scanner=slide % n_sc,
    )


@pytest.mark.parametrize("block", [7, 16384])
def test_knn_equals_brute_force(block: int) -> None:
    x = unit(np.random.default_rng(0), 300, 24)
    got = neighbours.knn(x, 6, use_gpu=False, block=block)
    np.testing.assert_array_equal(got, brute_knn(x, 6))


def test_drop_self_keeps_k_and_never_the_query() -> None:
    idx = np.array([[0, 3, 4], [2, 1, 0], [5, 6, 7]])
    out = neighbours.drop_self(idx, np.array([0, 1, 2]))
    np.testing.assert_array_equal(out, [[3, 4], [2, 0], [5, 6]])


def test_composition_and_global_top_k_equal_brute_force_counts() -> None:
    rng = np.random.default_rng(1)
    n_loc, n_st, n_sc, d = 12, 3, 2, 8
    base = rng.standard_normal((n_loc, d))
    x = np.concatenate([base + 0.8 * rng.standard_normal((n_loc, d)) for _ in range(n_st * n_sc)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = design_labels(n_loc, n_st, n_sc)
    k = 5
    idx = neighbours.knn(x, k, use_gpu=False)
    got = neighbours.summarise(idx, labels)
    counts = dict.fromkeys(neighbours.CLASSES, 0)
    hits = 0
    for q, row in enumerate(brute_knn(x, k)):
        found = False
        for j in row:
            if labels.location[j] == labels.location[q]:
                counts["same_location"] += 1
                found = True
            elif labels.slide[j] == labels.slide[q]:
                counts["same_slide"] += 1
            elif labels.staining[j] == labels.staining[q]:
                counts["same_staining"] += 1
            elif labels.scanner[j] == labels.scanner[q]:
                counts["same_scanner"] += 1
            else:
                counts["other"] += 1
        hits += found
    for c in neighbours.CLASSES:
        assert got[c] == pytest.approx(counts[c] / (len(x) * k))
    assert got["global_top_k"] == pytest.approx(hits / len(x))


def test_chance_shares_match_enumeration() -> None:
    n_loc, n_st, n_sc = 4, 3, 2
    labels = design_labels(n_loc, n_st, n_sc)
    n = n_loc * n_st * n_sc
    idx = np.array([[j for j in range(n) if j != q] for q in range(n)])
    enumerated = neighbours.summarise(idx, labels)
    chance = neighbours.chance_shares(n_loc, n_st, n_sc)
    assert sum(chance.values()) == pytest.approx(1.0)
    for c in neighbours.CLASSES:
        assert chance[c] == pytest.approx(enumerated[c])
    # Global top-k by chance: exhaustive over all k-subsets of a tiny design.
    from itertools import combinations

    others = n - 1
    matches = set(range(n_st * n_sc - 1))
    subsets = list(combinations(range(others), 3))
    p = sum(bool(matches & set(s)) for s in subsets) / len(subsets)
    assert neighbours.chance_global_top_k(n_loc, n_st * n_sc, 3) == pytest.approx(p)


def test_robustness_index_matches_croma_documented_call_and_its_definition() -> None:
    rng = np.random.default_rng(2)
    n_loc, n_st, n_sc, d, k = 15, 3, 2, 10, 4
    base = rng.standard_normal((n_loc, d))
    shift = rng.standard_normal((n_st, d))
    labels = design_labels(n_loc, n_st, n_sc)
    x = (
        base[labels.location]
        + 0.9 * shift[labels.staining]
        + 0.5 * rng.standard_normal((len(labels.slide), d))
    )
    slide_ids = [f"S{s}_C{c}" for s, c in zip(labels.staining, labels.scanner, strict=True)]
    st = [f"S{s}" for s in labels.staining]
    sc = [f"C{c}" for c in labels.scanner]
    got = pathorob.robustness_index(x, labels.location, slide_ids, st, sc, k)

    # croma's documented manifest (sample_id, image_path, label, group_id, <confounder>).
    from croma import RI

    manifest = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(len(x))],
            "image_path": [f"/data/{i}.png" for i in range(len(x))],
            "label": [f"loc{v}" for v in labels.location],
            "group_id": slide_ids,
            "center": st,
        }
    )
    direct = RI.compute_curve(x, manifest, confounder_column="center", k_values=[k])[k]
    assert got["ri_staining"] == pytest.approx(direct, abs=1e-12)

    # The definition: among the k nearest neighbours outside the query's slide,
    # SO = same location & other staining, OS = other location & same staining.
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    so = os_ = 0
    for q in range(len(x)):
        sims = xn @ xn[q]
        sims[labels.slide == labels.slide[q]] = -np.inf
        for j in np.argsort(-sims, kind="stable")[:k]:
            same_loc = labels.location[j] == labels.location[q]
            same_st = labels.staining[j] == labels.staining[q]
            so += same_loc and not same_st
            os_ += (not same_loc) and same_st
    assert got["ri_staining"] == pytest.approx(so / (so + os_), abs=1e-12)
    assert 0.0 <= got["ri_scanner"] <= 1.0


def test_robustness_index_runs_on_the_nested_location_subset(monkeypatch) -> None:
    from plismbench.analysis import compute
    from plismbench.data.catalogue import SlideName
    from plismbench.store.design import crossed_design

    rng = np.random.default_rng(3)
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s in range(3) for c in range(2)]
    design = crossed_design(names)
    sample = (rng.standard_normal((1, 12, 8)) + 0.7 * rng.standard_normal((6, 12, 8))).astype(
        np.float32
    )
    monkeypatch.setattr(compute, "RI_MAX_LOCATIONS", 5)
    timings: dict[str, float] = {}
    rows = compute.sample_tables(sample, design, compute.Settings(k=3, folds=2), timings)
    sub = compute.sample_positions(12, 5)
    slide = np.repeat(np.arange(6), 5)
    want = pathorob.robustness_index(
        sample[:, sub].reshape(-1, 8), np.tile(sub, 6), [names[i].slide_id for i in slide],
        [names[i].staining for i in slide], [names[i].scanner for i in slide], 3,
    )  # fmt: skip
    got = {r["confounder"]: r for r in rows["robustness"]}
    assert got["staining"]["n_locations"] == 5
    assert got["staining"]["ri"] == pytest.approx(want["ri_staining"])
    assert got["scanner"]["ri"] == pytest.approx(want["ri_scanner"])
