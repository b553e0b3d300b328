"""Synthetic crossed designs for tests and simulations: stainings x scanners, every pair of
slides, additive effects with a known median."""

from __future__ import annotations

import itertools

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
    st = {s: rng.normal(0, unit_sd) for s in set(frame["staining_a"]) | set(frame["staining_b"])}
    sc = {s: rng.normal(0, unit_sd) for s in set(frame["scanner_a"]) | set(frame["scanner_b"])}
    slides = set(frame["slide_a"]) | set(frame["slide_b"])
    own = {s: rng.normal(0, noise) for s in sorted(slides)}
    out = []
    for r in frame.iter_rows(named=True):
        out.append(
            st[r["staining_a"]] + st[r["staining_b"]] + sc[r["scanner_a"]] + sc[r["scanner_b"]]
            + own[r["slide_a"]] + own[r["slide_b"]] + rng.normal(0, noise)
        )  # fmt: skip
    return np.array(out)
