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
    probe_max_iter: int = 200
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
    tables: dict[str, list[Row]] = {
        "variance": [
            {
                "component": c,
                "ss": ss[c],
                "fraction": frac[c],
                "main": c in variance.MAIN_COMPONENTS,
            }
            for c in (*variance.MAIN_COMPONENTS, *variance.DETAIL_COMPONENTS)
        ]
        + [{"component": "total", "ss": ss["total"], "fraction": 1.0, "main": False}],
        "variance_subsets": variance.decompose_subsets(moments),
        "geometry": [
            {"metric": m, "value": v} for m, v in geometry.geometry(moments, spectrum).items()
        ],
    }
    del moments, spectrum
    timings["decompose"] = time.perf_counter() - t
    tables.update(sample_tables(sample, design, settings, timings))
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
    idx = neighbours.knn(x, k, use_gpu=settings.use_gpu)
    summary = neighbours.summarise(idx, labels)
    chance = neighbours.chance_shares(n_loc, design.n_stainings, design.n_scanners)
    chance["global_top_k"] = neighbours.chance_global_top_k(n_loc, n_slides, k)
    neighbour_rows = [
        {"k": k, "quantity": q, "value": summary[q], "chance": chance[q]}
        for q in (*neighbours.CLASSES, "global_top_k")
    ]
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
    return {"probes": probe_rows, "neighbours": neighbour_rows, "robustness": robustness_rows}


def compare(a: np.ndarray, b: np.ndarray, design: Design) -> dict[str, list[Row]]:
    """CKA (overall, per staining, per scanner, per slide) and principal angles of a vs b."""
    n_slides, n_loc, _ = a.shape
    xa, xb = a.reshape(n_slides * n_loc, -1), b.reshape(n_slides * n_loc, -1)
    slide = np.repeat(np.arange(n_slides), n_loc)
    rows: list[Row] = [{"scope": "all", "group": "all", "cka": cka_mod.linear_cka(xa, xb)}]
    for scope, of, names in (
        ("staining", design.staining_of, design.stainings),
        ("scanner", design.scanner_of, design.scanners),
    ):
        for i, name in enumerate(names):
            mask = of[slide] == i
            rows.append(
                {"scope": scope, "group": name, "cka": cka_mod.linear_cka(xa[mask], xb[mask])}
            )
    for i, sid in enumerate(design.slide_ids):
        rows.append({"scope": "slide", "group": sid, "cka": cka_mod.linear_cka(a[i], b[i])})
    angles: list[Row] = []
    for nuisance, of in (("staining", design.staining_of), ("scanner", design.scanner_of)):
        values = cka_mod.principal_angles(xa, xb, of[slide])
        angles += [
            {"nuisance": nuisance, "index": j, "angle_deg": float(v)} for j, v in enumerate(values)
        ]
    return {"cka": rows, "angles": angles}
