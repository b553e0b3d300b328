"""The layout of an evaluation folder: ``<metrics-dir>/<n>_tiles/<model>/``.

One owner for the file names ``evaluate`` writes and every reader reads, for the
``<n>_tiles`` folder and for choosing one (:func:`resolve_n_tiles`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from plismbench.data.catalogue import N_TILES
from plismbench.errors import InputError
from plismbench.utils.io import write_json

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


def tiles_dir(metrics_dir: str | os.PathLike[str], n_tiles: int) -> Path:
    """``<metrics_dir>/<n_tiles>_tiles``."""
    return Path(metrics_dir) / f"{n_tiles}_tiles"


def model_dir(metrics_dir: str | os.PathLike[str], n_tiles: int, model: str) -> Path:
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


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: what an evaluation was computed from, written last by ``evaluate``.

    Every field is optional when read, so that folders written by older versions (or by
    hand, in tests) still load; keys this version does not know are kept in ``extra``.
    """

    plismbench: str | None = None
    model: str | None = None
    features_dir: str | None = None
    slide_ids: tuple[str, ...] | None = None
    n_slides: int | None = None
    #: ``False`` for a PLISM store evaluated with slides missing.
    complete: bool | None = None
    n_pairs: int | None = None
    n_tiles: int | None = None
    n_tiles_available: int | None = None
    tile_subset: Any = None
    dim: int | None = None
    top_k: tuple[int, ...] = ()
    device: str | None = None
    world_size: int | None = None
    save_ranks: bool = False
    digests: dict[str, str] = field(default_factory=dict)
    cache_key: str | None = None
    pairs_computed: int | None = None
    elapsed_s: float | None = None
    finished_at: str | None = None
    #: The Hub commits of the weights and of the tiles (from meta.json), when shared by all.
    model_hub_revision: str | None = None
    dataset_revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """A PLISM store evaluated with slides missing (``complete: false``)."""
        return self.complete is False

    def to_json(self) -> dict[str, Any]:
        """The JSON object, in field order, ``extra`` last."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Parse a ``run.json`` object; :class:`ValueError` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("run.json is not an object")
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("slide_ids"), list):
            kwargs["slide_ids"] = tuple(str(s) for s in kwargs["slide_ids"])
        elif "slide_ids" in kwargs:
            kwargs["slide_ids"] = None
        kwargs["top_k"] = tuple(int(k) for k in kwargs.get("top_k") or ())
        if not isinstance(kwargs.get("digests", {}), dict):
            raise ValueError("run.json: 'digests' is not an object")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


def load_run(folder: Path) -> RunRecord:
    """``folder/run.json``; :class:`OSError` or :class:`ValueError` when absent or damaged."""
    return RunRecord.from_json(json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8")))


def read_run(folder: Path) -> RunRecord | None:
    """``folder/run.json``, or None when absent or unreadable."""
    try:
        return load_run(folder)
    except (OSError, ValueError, TypeError):
        return None


def write_run(folder: Path, record: RunRecord) -> None:
    """Write ``folder/run.json`` atomically (the last file of an evaluation)."""
    write_json(Path(folder) / RUN_FILE, record.to_json())


def finished_model_dir(metrics_dir: str | os.PathLike[str], n_tiles: int, model: str) -> Path:
    """``model``'s evaluation folder; :class:`InputError` when it did not finish."""
    folder = model_dir(metrics_dir, n_tiles, model)
    if not is_finished(folder):
        raise InputError(f"{folder}: no finished evaluation (no {RUN_FILE})")
    return folder
