"""The one experimental design: factors with levels, units mapped to one level per factor.

A dataset images the same registered tissue under controlled changes. Each *factor* (PLISM:
staining and scanner; SCORPION: scanner) has *levels*; each *unit* (a slide, or all the images
of one scanner) sits at one level of every factor. Slide pairs, when a metrics table is read,
are indexed by their two units. PLISM is 13 stainings x 7 scanners = 91 units, fully crossed.

Both the statistics (which resample factor levels) and ``analyze`` (whose closed-form variance
decompositions need a full grid, :meth:`Design.require_crossed`) read this one class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import polars as pl

from plismbench.data.catalogue import FACTORS, SlideName
from plismbench.data.datasets.spec import pair_type_name, pair_types_of
from plismbench.errors import InputError
from plismbench.metrics.aggregate import ALL

#: PLISM's factors, in catalogue order (13 stainings x 7 scanners).
PLISM_FACTORS: tuple[str, ...] = FACTORS


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class Design:
    """Units in a fixed order, each at one level of every factor, and optionally unit pairs."""

    #: Unit ids (PLISM: slide ids).
    units: tuple[str, ...]
    #: Factor names, e.g. ``("staining", "scanner")``.
    factors: tuple[str, ...]
    #: Per factor, its sorted levels.
    levels: tuple[tuple[str, ...], ...]
    #: (n_units, n_factors) index of each unit's level of each factor.
    codes: np.ndarray
    #: (n_pairs,) unit indices of each pair (empty when the design has no pairs).
    pair_a: np.ndarray = field(default_factory=_empty)
    pair_b: np.ndarray = field(default_factory=_empty)
    #: (n_pairs,) pair type names.
    pair_type: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def of_units(
        cls, cells: Mapping[str, Sequence[str]], factors: Sequence[str], where: str = "design"
    ) -> Design:
        """A design from ``{unit: (level of each factor)}``, units kept in the mapping's order."""
        factors = tuple(factors)
        if len(set(factors)) != len(factors) or not factors:
            raise InputError(f"{where}: factors must be distinct and non-empty, got {factors}")
        for unit, cell in cells.items():
            if len(cell) != len(factors) or any(not str(v) for v in cell):
                raise InputError(
                    f"{where}: unit {unit!r} has levels {tuple(cell)}, expected one non-empty "
                    f"level for each of {', '.join(factors)}"
                )
        levels = tuple(
            tuple(sorted({str(c[i]) for c in cells.values()})) for i in range(len(factors))
        )
        index = [{lv: j for j, lv in enumerate(lvls)} for lvls in levels]
        codes = np.array(
            [[index[i][str(c[i])] for i in range(len(factors))] for c in cells.values()],
            dtype=np.intp,
        ).reshape(len(cells), len(factors))
        return cls(units=tuple(cells), factors=factors, levels=levels, codes=codes)

    def with_pairs(self, a: Sequence[str], b: Sequence[str], types: Sequence[str]) -> Design:
        """The same units with pairs ``(a[i], b[i])`` of type ``types[i]``."""
        index = {u: i for i, u in enumerate(self.units)}
        return Design(
            units=self.units,
            factors=self.factors,
            levels=self.levels,
            codes=self.codes,
            pair_a=np.array([index[s] for s in a], dtype=np.intp),
            pair_b=np.array([index[s] for s in b], dtype=np.intp),
            pair_type=np.asarray(types).astype(str),
        )

    # -- generic accessors ---------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_pairs(self) -> int:
        return len(self.pair_a)

    def factor_index(self, factor: str) -> int:
        """Column of ``factor`` in :attr:`codes`."""
        try:
            return self.factors.index(factor)
        except ValueError:
            raise InputError(
                f"design has no factor {factor!r} (factors: {', '.join(self.factors)})"
            ) from None

    def levels_of(self, factor: str) -> tuple[str, ...]:
        """The levels of one factor."""
        return self.levels[self.factor_index(factor)]

    def codes_of(self, factor: str) -> np.ndarray:
        """(n_units,) level index of every unit for one factor."""
        return self.codes[:, self.factor_index(factor)]

    def cell(self, unit: int) -> tuple[int, ...]:
        """Level indices of the ``unit``-th unit, one per factor."""
        return tuple(int(c) for c in self.codes[unit])

    def pair_type_of(self, a: int, b: int) -> str:
        """The pair type of units ``a`` and ``b``, from which factors differ."""
        diff = self.codes[a] != self.codes[b]
        return pair_type_name([f for f, d in zip(self.factors, diff, strict=True) if d])

    def pair_types(self) -> tuple[str, ...]:
        """Every pair type the factors allow, in report order."""
        return pair_types_of(self.factors)

    def mask(self, pair_type: str) -> np.ndarray:
        """Boolean (n_pairs,) selecting one pair type (``all``: every pair)."""
        if pair_type == ALL:
            return np.ones(self.n_pairs, dtype=bool)
        return self.pair_type == pair_type

    def pair_keys(self) -> list[tuple[str, str]]:
        """``(unit_a, unit_b)`` of every pair, in order."""
        pairs = zip(self.pair_a, self.pair_b, strict=True)
        return [(self.units[a], self.units[b]) for a, b in pairs]

    def require_crossed(self, where: str = "features") -> Design:
        """This design if it is a full grid with one unit per cell and >= 2 levels per factor."""
        few = [f"{len(lv)} {f}(s)" for f, lv in zip(self.factors, self.levels, strict=True)]
        if any(len(lv) < 2 for lv in self.levels):
            raise InputError(
                f"{where}: {' and '.join(few)} found; analyze needs at least 2 of each "
                f"(a {' x '.join(self.factors)} design)"
            )
        seen: dict[tuple[int, ...], int] = {}
        for u in range(self.n_units):
            key = self.cell(u)
            if key in seen:
                shown = " x ".join(
                    f"{f} {self.levels[i][k]}"
                    for i, f, k in zip(range(len(key)), self.factors, key, strict=True)
                )
                raise InputError(
                    f"{where}: slides {self.units[seen[key]]!r} and {self.units[u]!r} are both "
                    f"{shown}; the design needs one slide per cell"
                )
            seen[key] = u
        missing = [
            "_".join(self.levels[i][k] for i, k in enumerate(key))
            for key in product(*(range(len(lv)) for lv in self.levels))
            if key not in seen
        ]
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            )
            grid = " x ".join(
                f"{len(lv)} {f}s" for f, lv in zip(self.factors, self.levels, strict=True)
            )
            raise InputError(
                f"{where}: unbalanced design: {self.n_units} slides for {grid}; missing {shown}"
            )
        return self

    # -- PLISM-named views (staining x scanner), used by the existing statistics and analyze --
    @property
    def slide_ids(self) -> tuple[str, ...]:
        return self.units

    @property
    def n_slides(self) -> int:
        return self.n_units

    @property
    def stainings(self) -> tuple[str, ...]:
        return self.levels_of("staining")

    @property
    def scanners(self) -> tuple[str, ...]:
        return self.levels_of("scanner")

    @property
    def n_stainings(self) -> int:
        return len(self.stainings)

    @property
    def n_scanners(self) -> int:
        return len(self.scanners)

    @property
    def staining_of(self) -> np.ndarray:
        return self.codes_of("staining")

    @property
    def scanner_of(self) -> np.ndarray:
        return self.codes_of("scanner")

    def cell_of(self, slide: int) -> tuple[int, int]:
        """(staining index, scanner index) of the ``slide``-th slide."""
        return int(self.staining_of[slide]), int(self.scanner_of[slide])


def crossed_design(names: Sequence[SlideName], where: str = "features") -> Design:
    """The staining x scanner design of parsed slide names, checked to be a full grid."""
    cells = {n.slide_id: (n.staining, n.scanner) for n in names}
    if len(cells) != len(names):
        dup = next(n.slide_id for i, n in enumerate(names) if n in names[:i])
        raise InputError(f"{where}: slide {dup!r} listed twice")
    return Design.of_units(cells, PLISM_FACTORS, where).require_crossed(where)


def design_columns(factors: Sequence[str] = PLISM_FACTORS) -> tuple[str, ...]:
    """Columns of ``metrics.csv`` a design needs: unit ids and each factor, per side."""
    return ("slide_a", "slide_b", *(f"{f}_{s}" for s in "ab" for f in factors))


#: Columns of ``metrics.csv`` PLISM's design needs.
DESIGN_COLUMNS = design_columns()


def design_from_metrics(
    metrics: pl.DataFrame, source: str = "metrics", factors: Sequence[str] = PLISM_FACTORS
) -> Design:
    """The design of a per-pair metrics table (``metrics.csv`` / ``metrics.parquet``)."""
    missing = [c for c in (*design_columns(factors), "pair_type") if c not in metrics.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing} (re-run evaluate)")
    if metrics.height == 0:
        raise InputError(f"{source}: no slide pairs")
    conditions: dict[str, tuple[str, ...]] = {}
    for side in ("a", "b"):
        cols = [f"slide_{side}", *(f"{f}_{side}" for f in factors)]
        for sid, *cell in metrics.select(cols).iter_rows():
            if conditions.setdefault(sid, tuple(cell)) != tuple(cell):
                raise InputError(f"{source}: slide {sid} has two levels of one factor")
    cells = {s: conditions[s] for s in sorted(conditions)}
    design = Design.of_units(cells, factors, source)
    return design.with_pairs(
        metrics["slide_a"].to_list(), metrics["slide_b"].to_list(), metrics["pair_type"].to_list()
    )


def pair_key_column(metrics: pl.DataFrame) -> pl.Series:
    """``slide_a|slide_b`` with the two ids sorted: the same pair whatever its orientation."""
    lo = pl.min_horizontal("slide_a", "slide_b")
    hi = pl.max_horizontal("slide_a", "slide_b")
    return metrics.select(pl.concat_str(lo, hi, separator="|").alias("pair"))["pair"]


def align(metrics: pl.DataFrame, reference: pl.DataFrame, source: str = "metrics") -> pl.DataFrame:
    """``metrics`` reordered row by row onto the slide pairs of ``reference``.

    Raises :class:`InputError` when the two do not hold the same slide pairs.
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
