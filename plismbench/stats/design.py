"""The experimental design behind the slide pairs: which staining and scanner each slide has.

PLISM's 4,095 slide pairs come from 91 slides, themselves 13 stainings x 7 scanners.
Stainings and scanners are the units of replication; `Design` indexes every pair
by its two slides and every slide by its staining and scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from plismbench.errors import InputError
from plismbench.metrics.aggregate import ALL

#: Columns of ``metrics.csv`` a design needs.
DESIGN_COLUMNS = ("slide_a", "slide_b", "staining_a", "scanner_a", "staining_b", "scanner_b")


@dataclass(frozen=True)
class Design:
    """Slides, their conditions and the slide pairs, as integer indices."""

    slides: list[str]
    stainings: list[str]
    scanners: list[str]
    #: (n_slides,) index into ``stainings`` / ``scanners``.
    slide_staining: np.ndarray
    slide_scanner: np.ndarray
    #: (n_pairs,) slide indices of each pair.
    pair_a: np.ndarray
    pair_b: np.ndarray
    #: (n_pairs,) pair type names.
    pair_type: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.pair_a)

    def mask(self, pair_type: str) -> np.ndarray:
        """Boolean (n_pairs,) selecting one pair type (``all``: every pair)."""
        if pair_type == ALL:
            return np.ones(self.n_pairs, dtype=bool)
        return self.pair_type == pair_type

    def pair_keys(self) -> list[tuple[str, str]]:
        """``(slide_a, slide_b)`` of every pair, in order."""
        pairs = zip(self.pair_a, self.pair_b, strict=True)
        return [(self.slides[a], self.slides[b]) for a, b in pairs]


def design_from_metrics(metrics: pl.DataFrame, source: str = "metrics") -> Design:
    """The design of a per-pair metrics table (``metrics.csv`` / ``metrics.parquet``)."""
    missing = [c for c in (*DESIGN_COLUMNS, "pair_type") if c not in metrics.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing} (re-run evaluate)")
    if metrics.height == 0:
        raise InputError(f"{source}: no slide pairs")
    conditions: dict[str, tuple[str, str]] = {}
    for side in ("a", "b"):
        for sid, st, sc in metrics.select(
            f"slide_{side}", f"staining_{side}", f"scanner_{side}"
        ).iter_rows():
            if conditions.setdefault(sid, (st, sc)) != (st, sc):
                raise InputError(f"{source}: slide {sid} has two stainings or scanners")
    slides = sorted(conditions)
    stainings = sorted({st for st, _ in conditions.values()})
    scanners = sorted({sc for _, sc in conditions.values()})
    s_index = {s: i for i, s in enumerate(stainings)}
    c_index = {s: i for i, s in enumerate(scanners)}
    slide_index = {s: i for i, s in enumerate(slides)}
    return Design(
        slides=slides,
        stainings=stainings,
        scanners=scanners,
        slide_staining=np.array([s_index[conditions[s][0]] for s in slides], dtype=np.intp),
        slide_scanner=np.array([c_index[conditions[s][1]] for s in slides], dtype=np.intp),
        pair_a=np.array([slide_index[s] for s in metrics["slide_a"]], dtype=np.intp),
        pair_b=np.array([slide_index[s] for s in metrics["slide_b"]], dtype=np.intp),
        pair_type=metrics["pair_type"].to_numpy().astype(str),
    )


def pair_key_column(metrics: pl.DataFrame) -> pl.Series:
    """``slide_a|slide_b`` with the two ids sorted: the same pair whatever its orientation."""
    lo = pl.min_horizontal("slide_a", "slide_b")
    hi = pl.max_horizontal("slide_a", "slide_b")
    return metrics.select(pl.concat_str(lo, hi, separator="|").alias("pair"))["pair"]


def align(metrics: pl.DataFrame, reference: pl.DataFrame, source: str = "metrics") -> pl.DataFrame:
    """``metrics`` reordered row by row onto the slide pairs of ``reference``.

    Raises `InputError` when the two do not hold the same slide pairs.
    """
    mine, ref = pair_key_column(metrics), pair_key_column(reference)
    if mine.n_unique() != metrics.height or set(mine) != set(ref):
        extra = len(set(mine) - set(ref))
        lacking = len(set(ref) - set(mine))
        raise InputError(
            f"{source}: not the same slide pairs ({extra} extra, {lacking} missing); "
            "paired statistics need models evaluated on the same slides"
        )
    order = {key: i for i, key in enumerate(mine.to_list())}
    return metrics[[order[key] for key in ref.to_list()]]
