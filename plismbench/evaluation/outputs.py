"""An evaluation's output files: complete and current, or absent.

``run.json`` is removed first when a run starts and written last, after every other
output; its presence means the folder is complete for the inputs it names. A run
whose other outputs were deleted regenerates them (from the cache) instead of
reporting "already complete".
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from plismbench.evaluation.stages import RANKS_DIR
from plismbench.evaluation.tables import results_markdown
from plismbench.store.features import FeatureStore
from plismbench.utils.io import atomic_path, write_json, write_text

RUN_FILE = "run.json"
PROVENANCE_FILE = "provenance.json"
#: The report's citable bundle of a run (plismbench.reporting.bundle): stale once outputs change.
BUNDLE_FILE = "results.json"
TABLES = ("metrics.csv", "metrics.parquet", "results.csv", "results.md")


def read_run(out: Path) -> dict[str, Any] | None:
    """The previous ``run.json``, or None when absent or unreadable."""
    try:
        run = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


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
    run: dict[str, Any] | None, out: Path, key: str, ks: tuple[int, ...], save_ranks: bool,
    provenance: bool,
) -> tuple[pl.DataFrame, pl.DataFrame] | None:  # fmt: skip
    """``(metrics, results)`` when ``out`` holds every output of the same inputs."""
    if run is None or run.get("cache_key") != key or tuple(run.get("top_k", ())) != ks:
        return None
    if save_ranks and not run.get("save_ranks"):
        return None
    needed = [*TABLES, *([PROVENANCE_FILE] if provenance else [])]
    if not all((out / name).is_file() for name in needed):
        return None
    if run.get("save_ranks") and not (out / RANKS_DIR / "tiles.npy").is_file():
        return None
    try:
        return pl.read_parquet(out / "metrics.parquet"), pl.read_csv(out / "results.csv")
    except (OSError, pl.exceptions.PolarsError):
        return None


def write_tables(
    out: Path, model: str, metrics: pl.DataFrame, results: pl.DataFrame, names: list[str],
    store: FeatureStore,
) -> None:  # fmt: skip
    """Every output except ``run.json``, each atomically."""
    with atomic_path(out / "metrics.csv") as tmp:
        metrics.write_csv(tmp)
    with atomic_path(out / "metrics.parquet") as tmp:
        metrics.write_parquet(tmp)
    with atomic_path(out / "results.csv") as tmp:
        results.write_csv(tmp)
    n = int(metrics["n_tiles"][0])
    title = f"{model}: robustness on {len(store.slides)} slides, {n} tiles per slide"
    write_text(out / "results.md", results_markdown(results, names, title))
    provenance = store.provenance()
    if provenance:
        write_json(out / PROVENANCE_FILE, provenance)
