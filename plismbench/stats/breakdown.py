"""Per-condition breakdown: medians per staining, per scanner and per tissue, with CIs.

For a staining ``s``, the pairs are those with a slide of staining ``s``, split by pair
type. Its interval comes from the hierarchical bootstrap with ``s`` held fixed (drawn
once in every resample) and the other stainings and every scanner resampled; likewise
for a scanner. Per tissue (``--tissue-map``: a CSV with ``x``, ``y`` and ``tissue``
columns), top-k accuracy is recomputed over the tiles of that tissue from the ranks
saved by ``evaluate --save-ranks``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from plismbench.data.catalogue import PAIR_TYPES
from plismbench.errors import InputError
from plismbench.stats.bootstrap import (
    LEVEL,
    N_BOOT,
    SEED,
    Bootstrap,
    resampled_units,
    unit_pair_weights,
    weighted_quantiles,
)
from plismbench.stats.bounds import metric_bounds
from plismbench.stats.summary import median_of
from plismbench.store.design import Design, design_from_metrics

METRICS = ("cosine_similarity", "top_10_accuracy")
COLUMNS = ("by", "level", "metric", "pair_type", "n_pairs", "median", "ci_low", "ci_high")


def _fixed_weights(boot: Bootstrap, kind: str, index: int) -> np.ndarray:
    """Bootstrap rows with one staining (or scanner) drawn exactly once, then the jackknife."""
    stain, scan = resampled_units(boot.design, boot.n_boot, boot.seed)
    (stain if kind == "staining" else scan)[:, index] = 1
    pairs = unit_pair_weights(stain, scan, boot.design)
    return np.vstack([pairs, boot.weights[boot.n_boot :]])


def _rows(
    boot: Bootstrap, design: Design, values: dict[str, np.ndarray], by: str, level: str,
    involved: np.ndarray, weights: np.ndarray, ci_level: float,
) -> list[dict[str, object]]:  # fmt: skip
    rows: list[dict[str, object]] = []
    for ptype in [*PAIR_TYPES, "all"]:
        mask = involved & design.mask(ptype)
        for metric, v in values.items():
            m = mask
            if not m.any():
                continue
            med = median_of(v[m])  # a NaN among the pairs: undefined
            reps = (weighted_quantiles(v[m], weights[:, m], [0.5])[:, 0] if np.isfinite(med)
                    else np.full(len(weights), np.nan))  # fmt: skip
            lo, hi = boot.ci(med, reps, ci_level, metric_bounds(metric))
            rows.append({"by": by, "level": level, "metric": metric, "pair_type": ptype,
                         "n_pairs": int(m.sum()), "median": med, "ci_low": lo, "ci_high": hi})
    return rows  # fmt: skip


def breakdown(
    metrics: pl.DataFrame,
    *,
    names: Sequence[str] = METRICS,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> pl.DataFrame:
    """Per staining and per scanner: median of each metric per pair type, with its CI."""
    design = design_from_metrics(metrics)
    boot = Bootstrap(design, n_boot, seed)
    values = {
        n: metrics[n].to_numpy().astype(np.float64) for n in names if n in metrics.columns
    }
    rows: list[dict[str, object]] = []
    for kind, labels, of_slide in (
        ("staining", design.stainings, design.staining_of),
        ("scanner", design.scanners, design.scanner_of),
    ):
        for index, label in enumerate(labels):
            involved = (of_slide[design.pair_a] == index) | (of_slide[design.pair_b] == index)
            weights = _fixed_weights(boot, kind, index)
            rows += _rows(boot, design, values, kind, label, involved, weights, level)
    return pl.DataFrame(rows, schema=list(COLUMNS), orient="row") if rows else pl.DataFrame()


_INTEGER = re.compile(r"[+-]?\d+(\.0*)?")


def read_tissue_map(path: str | os.PathLike[str]) -> dict[tuple[int, int], str]:
    """``{(x, y): tissue}`` from a CSV or TSV with integer ``x``, ``y`` and a ``tissue`` label.

    Refused with one line naming the row: a non-numeric, blank or fractional coordinate,
    a blank label, or the same (x, y) twice with different labels.
    """
    path = Path(path)
    try:
        head = path.read_text(errors="replace").split("\n", 1)[0]
        sep = "\t" if "\t" in head and "," not in head else ","
        table = pl.read_csv(path, separator=sep, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"--tissue-map {path}: unreadable ({type(exc).__name__})") from None
    table = table.rename({c: c.strip() for c in table.columns})
    missing = [c for c in ("x", "y", "tissue") if c not in table.columns]
    if missing:
        raise InputError(
            f"--tissue-map {path}: missing columns {missing} (need x, y, tissue; "
            f"found {table.columns})"
        )
    out: dict[tuple[int, int], str] = {}
    first: dict[tuple[int, int], int] = {}
    for line, (x, y, tissue) in enumerate(table.select("x", "y", "tissue").iter_rows(), 2):
        coords = []
        for name, raw in (("x", x), ("y", y)):
            text = (raw or "").strip()
            if not _INTEGER.fullmatch(text):
                what = "blank" if not text else f"{text!r} is not an integer"
                raise InputError(f"--tissue-map {path}: line {line}: {name} {what}")
            coords.append(int(float(text)))
        label = (tissue or "").strip()
        if not label:
            raise InputError(f"--tissue-map {path}: line {line}: blank tissue label")
        key = (coords[0], coords[1])
        if key in out and out[key] != label:
            raise InputError(
                f"--tissue-map {path}: line {line}: ({key[0]}, {key[1]}) is {label!r} but line "
                f"{first[key]} says {out[key]!r}"
            )
        out[key] = label
        first.setdefault(key, line)
    if not out:
        raise InputError(f"--tissue-map {path}: no rows")
    return out


def tissue_coverage(model_folder: Path, tissue_map: dict[tuple[int, int], str]) -> tuple[int, int]:
    """(evaluated tiles in the map, evaluated tiles): checked before any computation."""
    ranks = model_folder / "ranks"
    if not (ranks / "tiles.npy").is_file():
        raise InputError(
            f"{model_folder}: no saved ranks; re-run evaluate with --save-ranks for --tissue-map"
        )
    tiles = np.load(ranks / "tiles.npy")
    mapped = sum((int(x), int(y)) in tissue_map for x, y in tiles[:, -2:])
    return mapped, len(tiles)


def tissue_metrics(
    model_folder: Path, tissue_map: dict[tuple[int, int], str], k: int = 10
) -> pl.DataFrame:
    """Per slide pair and tissue: top-``k`` accuracy over that tissue's tiles (both ways).

    Needs ``ranks/`` from ``evaluate --save-ranks``. Columns: the pair columns of
    ``metrics.parquet`` plus ``tissue`` and ``top_{k}_accuracy``.
    """
    ranks = model_folder / "ranks"
    if not (ranks / "tiles.npy").is_file():
        raise InputError(
            f"{model_folder}: no saved ranks; re-run evaluate with --save-ranks for --tissue-map"
        )
    tiles = np.load(ranks / "tiles.npy")
    labels = np.array([tissue_map.get((int(x), int(y)), "") for x, y in tiles[:, -2:]])
    tissues = sorted(set(labels) - {""})
    if not tissues:
        raise InputError("--tissue-map: no tile coordinate of this evaluation is in the map")
    pairs = pl.read_parquet(model_folder / "metrics.parquet")
    keep = ["slide_a", "slide_b", "staining_a", "scanner_a", "staining_b", "scanner_b",
            "pair_type"]  # fmt: skip
    rows = []
    for r in pairs.select(keep).iter_rows(named=True):
        both = np.load(ranks / f"{r['slide_a']}---{r['slide_b']}.npy")
        hit = (both <= k).mean(axis=0)  # mean of the two directions per tile
        for tissue in tissues:
            sel = labels == tissue
            rows.append({**r, "tissue": tissue, f"top_{k}_accuracy": float(hit[sel].mean())})
    return pl.DataFrame(rows)


def tissue_breakdown(
    model_folder: Path, tissue_map: dict[tuple[int, int], str], *, n_boot: int = N_BOOT,
    seed: int = SEED, level: float = LEVEL,
) -> pl.DataFrame:  # fmt: skip
    """Per tissue: median top-10 accuracy per pair type, with its CI (same design)."""
    per = tissue_metrics(model_folder, tissue_map)
    rows: list[dict[str, object]] = []
    for tissue in sorted(per["tissue"].unique().to_list()):
        sub = per.filter(pl.col("tissue") == tissue)
        design = design_from_metrics(sub)
        boot = Bootstrap(design, n_boot, seed)
        values = {"top_10_accuracy": sub["top_10_accuracy"].to_numpy().astype(np.float64)}
        everything = np.ones(design.n_pairs, dtype=bool)
        rows += _rows(boot, design, values, "tissue", tissue, everything, boot.weights, level)
    return pl.DataFrame(rows, schema=list(COLUMNS), orient="row")
