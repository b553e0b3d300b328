"""``plismbench.breakdown``: one model's medians per staining, scanner (and tissue)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import polars as pl

from plismbench.errors import InputError
from plismbench.stats import breakdown as bd
from plismbench.stats.bootstrap import N_BOOT
from plismbench.stats.ranking import load_entry
from plismbench.store.evaluation import finished_model_dir, resolve_n_tiles
from plismbench.utils.io import atomic_path

#: Default file name, in the model's evaluation folder.
BREAKDOWN_FILE = "breakdown.csv"


def breakdown(
    model: str,
    metrics_dir: str | os.PathLike[str],
    n_tiles: int | None = None,
    tissue_map: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    n_boot: int = N_BOOT,
    min_coverage: float = 0.0,
) -> tuple[pl.DataFrame, Path]:
    """Medians per staining and per scanner (and per tissue with ``tissue_map``, which needs
    ``evaluate --save-ranks``), each with its 95% CI; written to ``out`` (default
    ``<model folder>/breakdown.csv``). Returns the table and the file.

    A tissue map covering part of the evaluated tiles gives a warning with the count, or
    an :class:`InputError` when it covers less than ``min_coverage`` (a share, 0-1).
    """
    root = Path(metrics_dir)
    n = resolve_n_tiles(root, n_tiles)
    folder = finished_model_dir(root, n, model)
    tissues = bd.read_tissue_map(tissue_map) if tissue_map is not None else None
    if tissues is not None:  # every check before any computation
        mapped, total = bd.tissue_coverage(folder, tissues)
        if total and mapped / total < min_coverage:
            raise InputError(
                f"--tissue-map {tissue_map}: covers {mapped} of {total} evaluated tiles "
                f"({mapped / total:.0%}), under --min-coverage {min_coverage:g}"
            )
        if mapped < total:
            warnings.warn(
                f"--tissue-map {tissue_map}: {total - mapped} of {total} evaluated tiles are "
                "not in the map; per-tissue accuracies use the mapped tiles only",
                stacklevel=2,
            )
    entry = load_entry(folder)
    assert entry.metrics is not None
    table = bd.breakdown(entry.metrics, n_boot=n_boot)
    if tissues is not None:
        table = pl.concat([table, bd.tissue_breakdown(folder, tissues, n_boot=n_boot)])
    path = Path(out) if out is not None else folder / BREAKDOWN_FILE
    with atomic_path(path) as tmp:
        table.write_csv(tmp)
    return table, path
