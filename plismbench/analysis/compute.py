"""Everything analyze measures on one model's features (one layer, or the final ones)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plismbench.analysis import cka as cka_mod
from plismbench.analysis import geometry, neighbours, pathorob, probes, variance
from plismbench.store.design import Design
from plismbench.store.features import FeatureStore

Row = dict[str, Any]
#: croma's RI runs on at most this many of the sampled locations (a nested subset): its
#: neighbour search and per-tile loop cost about 2 s per 1,000 tiles on 2 CPU cores.
RI_MAX_LOCATIONS = 200


@dataclass(frozen=True)
class Settings:
    """What analyze computes, and on which rows."""

    k: int = 10
    folds: int = 5
    probe_max_iter: int = 1000
    robustness_index: bool = True
    use_gpu: bool | None = None
    threads: int = 4


@dataclass
class ViewResult:
    """Tables of one (model, layer) and the sampled features kept for comparisons."""

    tables: dict[str, list[Row]]
    #: (slides, sampled locations, d) L2-normalised features of the sample.
    sample: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def sample_positions(n_rows: int, n_sample: int | None) -> np.ndarray:
    """Sorted positions (into the chosen rows) of the nested sample (seed 0)."""
    if n_sample is None or n_sample >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    return np.sort(np.random.default_rng(0).permutation(n_rows)[:n_sample]).astype(np.int64)


def analyse_view(
    store: FeatureStore, design: Design, rows: np.ndarray, pos: np.ndarray, settings: Settings
) -> ViewResult:
    """Stream every slide once, then decompose, probe and search neighbours."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    moments = variance.Moments(design, len(rows), store.dim)
    sample = np.empty((design.n_slides, len(pos), store.dim), np.float32)
    for i, x in enumerate(store.iter_normalised(rows, threads=settings.threads)):
        moments.add(i, x)
        sample[i] = x[pos]
    timings["read"] = time.perf_counter() - t

    t = time.perf_counter()
    # The spectrum (effective rank, participation ratio) of the sampled tiles: one
    # (rows x d^2) GEMM instead of one per slide on every tile (17x fewer flops at 8,139).
    spectrum = geometry.Spectrum(store.dim)
    spectrum.add(sample.reshape(-1, store.dim))
    ss = variance.decompose(moments)
    frac = variance.fractions(ss)
    n_loc, n_st, n_sc = len(rows), design.n_stainings, design.n_scanners
    chance = variance.chance_fractions(n_loc, n_st, n_sc)
    adjusted = variance.adjusted_fractions(ss, n_loc, n_st, n_sc)
    tables: dict[str, list[Row]] = {
        "variance": [
            {
                "component": c,
                "ss": ss[c],
                "fraction": frac[c],
                "chance": chance[c],
                "adjusted": adjusted[c],
                "main": c in variance.MAIN_COMPONENTS,
            }
            for c in (*variance.MAIN_COMPONENTS, *variance.DETAIL_COMPONENTS)
        ]
        + [
            {
                "component": "total",
                "ss": ss["total"],
                "fraction": 1.0,
                "chance": 1.0,
                "adjusted": float("nan"),
                "main": False,
            }
        ],
        "variance_subsets": variance.decompose_subsets(moments),
        "geometry": [
            {"metric": m, "value": v} for m, v in geometry.geometry(moments, spectrum).items()
        ],
    }
    del moments, spectrum
    timings["decompose"] = time.perf_counter() - t
    sampled = sample_tables(sample, design, settings, timings)
    tables.update(sampled)
    tables["offset"] = [
        {"quantity": q, "value": v, "chance": 1.0 / n_loc}
        for q, v in variance.offset_shares(ss).items()
    ] + sampled["offset"]
    return ViewResult(tables, sample, timings)


def sample_tables(
    sample: np.ndarray, design: Design, settings: Settings, timings: dict[str, float]
) -> dict[str, list[Row]]:
    """Probes, neighbourhoods and RI on the sampled tiles of every slide."""
    n_slides, n_loc, dim = sample.shape
    x = sample.reshape(n_slides * n_loc, dim)
    slide = np.repeat(np.arange(n_slides), n_loc)
    labels = neighbours.Labels(
        location=np.tile(np.arange(n_loc), n_slides),
        slide=slide,
        staining=design.staining_of[slide],
        scanner=design.scanner_of[slide],
    )
    t = time.perf_counter()
    probe_rows = probes.probes(
        x, labels.staining, labels.scanner, labels.location,
        folds=settings.folds, max_iter=settings.probe_max_iter,
    )  # fmt: skip
    timings["probes"] = time.perf_counter() - t

    t = time.perf_counter()
    k = settings.k
    r = n_slides - 1
    # One search serves both: the k-NN composition and the R-NN retrieval of the matches.
    idx = neighbours.knn(x, max(k, r), use_gpu=settings.use_gpu)
    summary = neighbours.summarise(idx[:, :k], labels)
    summary.update(neighbours.retrieval(idx[:, :r], labels))
    chance = neighbours.chance_shares(n_loc, design.n_stainings, design.n_scanners)
    chance["global_top_k"] = neighbours.chance_global_top_k(n_loc, n_slides, k)
    chance["map_at_r"] = neighbours.chance_map_at_r(n_loc, n_slides)
    chance["r_precision"] = chance["top_1"] = r / (n_loc * n_slides - 1)
    neighbour_rows = [
        {"k": k if q in (*neighbours.CLASSES, "global_top_k") else (1 if q == "top_1" else r),
         "quantity": q, "value": summary[q], "chance": chance[q]}
        for q in (*neighbours.RETRIEVAL, *neighbours.CLASSES, "global_top_k")
    ]  # fmt: skip
    del idx
    # The same retrieval once each slide's mean is subtracted (a per-slide offset removed).
    centred = sample - sample.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    centred /= np.maximum(norms, np.float32(1e-12))
    idx = neighbours.knn(centred.reshape(-1, dim), r, use_gpu=settings.use_gpu)
    corrected = neighbours.retrieval(idx, labels)
    del idx
    offset_rows: list[Row] = []
    for q in neighbours.RETRIEVAL:
        offset_rows += [
            {"quantity": q, "value": summary[q], "chance": chance[q]},
            {"quantity": f"{q}_offset_corrected", "value": corrected[q], "chance": chance[q]},
        ]
    offset_rows += [
        {"quantity": "matched_cosine", "value": neighbours.matched_cosine(sample),
         "chance": float("nan")},
        {"quantity": "matched_cosine_offset_corrected",
         "value": neighbours.matched_cosine(centred), "chance": float("nan")},
    ]  # fmt: skip
    del centred
    timings["neighbours"] = time.perf_counter() - t

    robustness_rows: list[Row] = []
    if settings.robustness_index:
        t = time.perf_counter()
        sub = sample_positions(n_loc, RI_MAX_LOCATIONS)
        ri_slide = np.repeat(np.arange(n_slides), sub.size)
        ri = pathorob.robustness_index(
            sample[:, sub].reshape(-1, dim),
            np.tile(sub, n_slides),
            [design.slide_ids[i] for i in ri_slide],
            [design.stainings[design.staining_of[i]] for i in ri_slide],
            [design.scanners[design.scanner_of[i]] for i in ri_slide],
            k,
        )
        robustness_rows = [
            {"k": k, "confounder": key.removeprefix("ri_"), "ri": v, "n_locations": sub.size}
            for key, v in ri.items()
        ]
        timings["robustness_index"] = time.perf_counter() - t
    return {
        "probes": probe_rows,
        "neighbours": neighbour_rows,
        "robustness": robustness_rows,
        "offset": offset_rows,
    }


def compare(a: np.ndarray, b: np.ndarray, design: Design) -> dict[str, list[Row]]:
    """CKA with its null (all, per staining, per scanner, per slide) and principal angles.

    ``a`` and ``b`` are (slides, locations, d) samples of the same tiles. The samples of
    every CKA scope are the distinct locations (see :mod:`plismbench.analysis.cka`).
    """
    n_slides, n_loc, _ = a.shape
    groups = {
        "staining": (design.staining_of, design.stainings),
        "scanner": (design.scanner_of, design.scanners),
    }
    sums: dict[tuple[str, int], list[np.ndarray]] = {}
    rows: list[Row] = []
    for i, sid in enumerate(design.slide_ids):
        ka, kb = cka_mod.gram(a[i]), cka_mod.gram(b[i])
        rows.append({"scope": "slide", "group": sid, **cka_mod.cka_with_null(ka, kb)})
        keys = [("all", 0)] + [(scope, int(of[i])) for scope, (of, _) in groups.items()]
        for key in keys:
            if key in sums:
                sums[key][0] += ka
                sums[key][1] += kb
            else:
                sums[key] = [ka.copy(), kb.copy()]
    head: list[Row] = [{"scope": "all", "group": "all", **cka_mod.cka_with_null(*sums["all", 0])}]
    for scope, (_, names) in groups.items():
        head += [
            {"scope": scope, "group": name, **cka_mod.cka_with_null(*sums[scope, j])}
            for j, name in enumerate(names)
        ]
    xa, xb = a.reshape(n_slides * n_loc, -1), b.reshape(n_slides * n_loc, -1)
    slide = np.repeat(np.arange(n_slides), n_loc)
    angles: list[Row] = []
    for nuisance, (of, _) in groups.items():
        labels = of[slide]
        values = cka_mod.principal_angles(xa, xb, labels)
        rand, shuf = cka_mod.angle_nulls(xa, xb, labels)
        angles += [
            {
                "nuisance": nuisance, "index": j, "angle_deg": float(v),
                "null_random_deg": float(rand[j]) if j < rand.size else float("nan"),
                "null_shuffled_deg": float(shuf[j]) if j < shuf.size else float("nan"),
            }
            for j, v in enumerate(values)
        ]  # fmt: skip
    return {"cka": head + rows, "angles": angles}
