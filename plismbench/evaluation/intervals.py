"""95% intervals beside every aggregate of ``results.csv`` (see docs/statistics.md).

The bootstrap resamples stainings and scanners, the units of replication. A store
whose slides do not form such a design (fewer than two stainings or scanners, names
that are not PLISM's) keeps its aggregates with empty interval columns, never fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from plismbench.errors import InputError
from plismbench.stats.summary import CI_COLUMNS, TAIL_COLUMNS, add_ci_columns


def with_intervals(
    results: pl.DataFrame, metrics: pl.DataFrame, names: Sequence[str]
) -> pl.DataFrame:
    """``results`` with `CI_COLUMNS` and `TAIL_COLUMNS` (null when no design can be
    resampled)."""
    try:
        return add_ci_columns(results, metrics, names)
    except (InputError, ValueError, IndexError):
        return results.with_columns(
            pl.lit(None, dtype=pl.Float64).alias(c) for c in (*CI_COLUMNS, *TAIL_COLUMNS)
        )
