"""An evaluation's output files: complete and current, or absent.

``run.json`` is removed first when a run starts and written last, after every other
output; its presence means the folder is complete for the inputs it names. A run
whose other outputs were deleted regenerates them (from the cache) instead of
reporting "already complete".
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import polars as pl

from plismbench.evaluation.stages import RANKS_DIR
from plismbench.evaluation.tables import results_markdown
from plismbench.store.evaluation import (
    BUNDLE_FILE,
    METRICS_CSV,
    METRICS_PARQUET,
    PROVENANCE_FILE,
    RESULTS_CSV,
    RESULTS_MD,
    RUN_FILE,
    TABLES,
    RunRecord,
)
from plismbench.store.features import FeatureStore
from plismbench.utils.io import atomic_path, write_json, write_text


def remove_run(out: Path) -> None:
    """Mark the folder incomplete (first thing a run does)."""
    with contextlib.suppress(FileNotFoundError):
        (out / RUN_FILE).unlink()


def remove_outputs(out: Path) -> None:
    """Remove every output but the cache: they are about to change."""
    remove_run(out)
    for name in (*TABLES, PROVENANCE_FILE, BUNDLE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    shutil.rmtree(out / RANKS_DIR, ignore_errors=True)


def reusable(
    run: RunRecord | None, out: Path, key: str, ks: tuple[int, ...], save_ranks: bool,
    provenance: bool,
) -> tuple[pl.DataFrame, pl.DataFrame] | None:  # fmt: skip
    """``(metrics, results)`` when ``out`` holds every output of the same inputs."""
    if run is None or run.cache_key != key or run.top_k != ks:
        return None
    if save_ranks and not run.save_ranks:
        return None
    needed = [*TABLES, *([PROVENANCE_FILE] if provenance else [])]
    if not all((out / name).is_file() for name in needed):
        return None
    if run.save_ranks and not (out / RANKS_DIR / "tiles.npy").is_file():
        return None
    try:
        return pl.read_parquet(out / METRICS_PARQUET), pl.read_csv(out / RESULTS_CSV)
    except (OSError, pl.exceptions.PolarsError):
        return None


def write_tables(
    out: Path, model: str, metrics: pl.DataFrame, results: pl.DataFrame, names: list[str],
    store: FeatureStore,
) -> None:  # fmt: skip
    """Every output except ``run.json``, each atomically."""
    with atomic_path(out / METRICS_CSV) as tmp:
        metrics.write_csv(tmp)
    with atomic_path(out / METRICS_PARQUET) as tmp:
        metrics.write_parquet(tmp)
    with atomic_path(out / RESULTS_CSV) as tmp:
        results.write_csv(tmp)
    n = int(metrics["n_tiles"][0])
    title = f"{model}: robustness on {len(store.slides)} slides, {n} tiles per slide"
    write_text(out / RESULTS_MD, results_markdown(results, names, title))
    provenance = store.provenance()
    if provenance:
        write_json(out / PROVENANCE_FILE, provenance)
