"""The crossed design of the slides: every slide is one (staining, scanner) cell.

PLISM is fully crossed: 13 stainings x 7 scanners = 91 slides, one slide per cell, and
every slide holds the same registered tile locations. The closed-form decompositions of
`plismbench.analysis.variance` need exactly that, so anything else is refused here
with one line: a missing cell, a cell with two slides, fewer than 2 stainings or scanners.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from plismbench.data.catalogue import SlideName
from plismbench.errors import InputError


@dataclass(frozen=True)
class Design:
    """Slides in store order, with the staining and scanner index of each."""

    slide_ids: tuple[str, ...]
    stainings: tuple[str, ...]
    scanners: tuple[str, ...]
    #: Per slide, its index into `stainings` / `scanners`.
    staining_of: np.ndarray
    scanner_of: np.ndarray

    @property
    def n_stainings(self) -> int:
        return len(self.stainings)

    @property
    def n_scanners(self) -> int:
        return len(self.scanners)

    @property
    def n_slides(self) -> int:
        return len(self.slide_ids)

    def cell_of(self, slide: int) -> tuple[int, int]:
        """(staining index, scanner index) of the ``slide``-th slide."""
        return int(self.staining_of[slide]), int(self.scanner_of[slide])


def crossed_design(names: Sequence[SlideName], where: str = "features") -> Design:
    """Check that ``names`` form a full staining x scanner grid, one slide per cell."""
    stainings = tuple(sorted({n.staining for n in names}))
    scanners = tuple(sorted({n.scanner for n in names}))
    if len(stainings) < 2 or len(scanners) < 2:
        raise InputError(
            f"{where}: {len(stainings)} staining(s) and {len(scanners)} scanner(s) found; "
            "analyze needs at least 2 of each (a staining x scanner design)"
        )
    cells: dict[tuple[str, str], str] = {}
    for n in names:
        key = (n.staining, n.scanner)
        if key in cells:
            raise InputError(
                f"{where}: slides {cells[key]!r} and {n.slide_id!r} are both staining "
                f"{n.staining} x scanner {n.scanner}; the design needs one slide per cell"
            )
        cells[key] = n.slide_id
    missing = [f"{st}_{sc}" for st in stainings for sc in scanners if (st, sc) not in cells]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise InputError(
            f"{where}: unbalanced design: {len(names)} slides for {len(stainings)} stainings x "
            f"{len(scanners)} scanners; missing {shown}"
        )
    s_index = {s: i for i, s in enumerate(stainings)}
    c_index = {c: i for i, c in enumerate(scanners)}
    return Design(
        slide_ids=tuple(n.slide_id for n in names),
        stainings=stainings,
        scanners=scanners,
        staining_of=np.array([s_index[n.staining] for n in names], dtype=np.int64),
        scanner_of=np.array([c_index[n.scanner] for n in names], dtype=np.int64),
    )
