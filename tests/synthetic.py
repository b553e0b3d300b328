"""Synthetic crossed designs for tests and simulations: stainings x scanners, every pair of
slides, additive effects with a known median."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.data.catalogue import SCANNERS, STAININGS, pair_type, parse_slide_id, slide_id


def pairs_frame(n_stainings: int, n_scanners: int) -> pl.DataFrame:
    """Every unordered pair of ``n_stainings x n_scanners`` PLISM-named slides."""
    ids = [slide_id(st, sc) for st in STAININGS[:n_stainings] for sc in SCANNERS[:n_scanners]]
    rows = []
    for a, b in itertools.combinations(ids, 2):
        sa, sb = parse_slide_id(a), parse_slide_id(b)
        rows.append(
            {
                "slide_a": a, "slide_b": b, "staining_a": sa.staining, "scanner_a": sa.scanner,
                "staining_b": sb.staining, "scanner_b": sb.scanner, "pair_type": pair_type(sa, sb),
            }
        )  # fmt: skip
    return pl.DataFrame(rows)


def additive_values(
    frame: pl.DataFrame, rng: np.random.Generator, *, unit_sd: float = 1.0, noise: float = 0.3
) -> np.ndarray:
    """Pair value = effects of both slides' staining and scanner + slide + pair noise.

    Symmetric around 0, so the population median of every pair type is 0.
    """
    # Sorted: a set's order follows the per-process string hash, and the draws would too.
    stainings = sorted(set(frame["staining_a"]) | set(frame["staining_b"]))
    scanners = sorted(set(frame["scanner_a"]) | set(frame["scanner_b"]))
    st = {s: rng.normal(0, unit_sd) for s in stainings}
    sc = {s: rng.normal(0, unit_sd) for s in scanners}
    slides = set(frame["slide_a"]) | set(frame["slide_b"])
    own = {s: rng.normal(0, noise) for s in sorted(slides)}
    out = []
    for r in frame.iter_rows(named=True):
        out.append(
            st[r["staining_a"]] + st[r["staining_b"]] + sc[r["scanner_a"]] + sc[r["scanner_b"]]
            + own[r["slide_a"]] + own[r["slide_b"]] + rng.normal(0, noise)
        )  # fmt: skip
    return np.array(out)


def synthetic_metrics(
    frame: pl.DataFrame, rng: np.random.Generator, level: float, *, unit_sd: float = 0.05,
    noise: float = 0.02, top_k: tuple[int, ...] = (1, 10),
) -> pl.DataFrame:
    """Per-pair metrics of a model whose scores sit around ``level`` (clipped to [0, 1])."""
    cols = {
        name: level + additive_values(frame, rng, unit_sd=unit_sd, noise=noise)
        for name in ["cosine_similarity", *(f"top_{k}_accuracy" for k in top_k)]
    }
    cols = {k: np.clip(v, 0.0, 1.0) for k, v in cols.items()}
    cols["mrr"] = cols[f"top_{top_k[0]}_accuracy"]
    cols["median_rank"] = 1.0 + 10.0 * (1.0 - cols["cosine_similarity"])
    return frame.with_columns(**{k: pl.Series(v) for k, v in cols.items()})


def write_evaluation(
    folder: Path, metrics: pl.DataFrame, top_k: tuple[int, ...] = (1, 10), **run: Any
) -> Path:
    """An evaluation folder as ``plismbench evaluate`` writes it, from per-pair metrics."""
    from plismbench.metrics.aggregate import aggregate, metric_names

    folder.mkdir(parents=True, exist_ok=True)
    metrics.write_parquet(folder / "metrics.parquet")
    metrics.write_csv(folder / "metrics.csv")
    aggregate(metrics, metric_names(top_k)).write_csv(folder / "results.csv")
    slides = sorted(set(metrics["slide_a"]) | set(metrics["slide_b"]))
    info = {
        "model": folder.name, "n_slides": len(slides), "n_pairs": metrics.height,
        "n_tiles": int(folder.parent.name.split("_")[0]), "top_k": list(top_k),
        "tile_subset": "all rows", **run,
    }  # fmt: skip
    (folder / "run.json").write_text(json.dumps(info))
    return folder
