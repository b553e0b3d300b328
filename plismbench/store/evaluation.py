"""The layout of an evaluation folder: ``<metrics-dir>/<n>_tiles/<model>/``.

One owner for the file names ``evaluate`` writes and every reader reads, for the
``<n>_tiles`` folder and for choosing one (`resolve_n_tiles()`).
"""

from __future__ import annotations

import re
from pathlib import Path

from plismbench.data.catalogue import N_TILES
from plismbench.errors import InputError

#: Written last by ``evaluate``: its presence means the folder is complete.
RUN_FILE = "run.json"
#: ``{slide_id: meta.json}`` of the features that were evaluated.
PROVENANCE_FILE = "provenance.json"
#: The report's citable bundle of a run: stale once the outputs change.
BUNDLE_FILE = "results.json"
#: One row per slide pair.
METRICS_CSV = "metrics.csv"
METRICS_PARQUET = "metrics.parquet"
#: One row per (pair type, metric), with intervals.
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
#: Every table ``evaluate`` writes, ``run.json`` aside.
TABLES = (METRICS_CSV, METRICS_PARQUET, RESULTS_CSV, RESULTS_MD)
#: In ``<metrics-dir>/<n>_tiles/``: the leaderboard over its models.
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"

#: Default tile count for full PLISM slides (reference parity); other data use every tile.
DEFAULT_N_TILES: int = N_TILES // 2

_TILES_DIR = re.compile(r"(\d+)_tiles")


def tiles_dir(metrics_dir: str | Path, n_tiles: int) -> Path:
    """``<metrics_dir>/<n_tiles>_tiles``."""
    return Path(metrics_dir) / f"{n_tiles}_tiles"


def model_dir(metrics_dir: str | Path, n_tiles: int, model: str) -> Path:
    """``<metrics_dir>/<n_tiles>_tiles/<model>``: one model's evaluation."""
    return tiles_dir(metrics_dir, n_tiles) / model


def n_tiles_of(folder: Path) -> int | None:
    """The tile count of a ``<n>_tiles`` folder (or of a model folder inside one)."""
    for part in (folder.name, folder.parent.name):
        m = _TILES_DIR.fullmatch(part)
        if m:
            return int(m.group(1))
    return None


def is_finished(folder: Path) -> bool:
    """A model folder whose evaluation finished (``run.json`` written last)."""
    return (folder / RUN_FILE).is_file()


def available_n_tiles(metrics_dir: Path) -> list[int]:
    """Tile counts with evaluated models under ``metrics_dir``."""
    found = []
    for p in Path(metrics_dir).glob("*_tiles"):
        m = _TILES_DIR.fullmatch(p.name)
        if m and p.is_dir():
            found.append(int(m.group(1)))
    return sorted(found)


def resolve_n_tiles(metrics_dir: Path, n_tiles: int | None) -> int:
    """The tile count to read: given, the only one, or 8,139 when several exist."""
    options = available_n_tiles(metrics_dir)
    if n_tiles is not None:
        if n_tiles not in options:
            raise InputError(
                f"{metrics_dir}/{n_tiles}_tiles: no evaluated models (found {options})"
            )
        return n_tiles
    if len(options) == 1:
        return options[0]
    if DEFAULT_N_TILES in options:
        return DEFAULT_N_TILES
    if not options:
        raise InputError(f"{metrics_dir}: no '<n>_tiles' folders; run 'plismbench evaluate' first")
    raise InputError(f"{metrics_dir}: several tile counts {options}; choose one with --n-tiles")
