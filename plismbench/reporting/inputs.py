"""What a report reads: the leaderboard and each finished model's outputs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from plismbench.errors import InputError
from plismbench.stats.leaderboard import leaderboard
from plismbench.store.evaluation import (
    METRICS_PARQUET,
    PROVENANCE_FILE,
    RESULTS_CSV,
    RunRecord,
    load_run,
    resolve_n_tiles,
    tiles_dir,
)

#: Keys of a ``meta.json`` that may hold a parameter count (in millions for ``params_m``).
_PARAM_KEYS_M = ("params_m", "parameters_m")
_PARAM_KEYS = ("n_params", "num_params", "parameters")


@dataclass(frozen=True)
class ModelRun:
    """One finished evaluation under ``<metrics-dir>/<n>_tiles/<model>/``."""

    name: str
    folder: Path
    #: One row per slide pair (``metrics.parquet``).
    metrics: pl.DataFrame
    #: One row per (pair_type, metric) (``results.csv``).
    results: pl.DataFrame
    run: RunRecord
    #: ``{slide_id: meta.json}``; empty when the features had no ``meta.json``.
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Parameters in millions, when known (registry, then provenance).
    params_m: float | None = None

    @property
    def top_k(self) -> list[int]:
        return list(self.run.top_k)


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report shows, for one tile count."""

    metrics_dir: Path
    n_tiles: int
    #: ``<metrics-dir>/<n>_tiles``.
    base: Path
    #: :func:`plismbench.leaderboard`'s table, best first.
    board: pl.DataFrame
    #: Finished models in leaderboard order.
    models: list[ModelRun]


def load_inputs(metrics_dir: str | os.PathLike[str], n_tiles: int | None = None) -> ReportInputs:
    """Read the leaderboard and every finished model; :class:`InputError` if there is none."""
    root = Path(metrics_dir)
    if not root.is_dir():
        raise InputError(f"{root}: metrics directory not found")
    n = resolve_n_tiles(root, n_tiles)
    base = tiles_dir(root, n)
    try:
        board = leaderboard(root, n, write=False)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{base}: unreadable evaluation outputs ({first})") from None
    models = [_load_model(base / name) for name in board["model"].to_list()]
    return ReportInputs(root, n, base, board, models)


def _load_model(folder: Path) -> ModelRun:
    try:
        metrics = pl.read_parquet(folder / METRICS_PARQUET)
        results = pl.read_csv(folder / RESULTS_CSV)
        run = load_run(folder)
    except (OSError, ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{folder}: unreadable evaluation outputs ({exc})") from None
    provenance: dict[str, Any] = {}
    prov_file = folder / PROVENANCE_FILE
    if prov_file.is_file():
        try:
            loaded = json.loads(prov_file.read_text(encoding="utf-8"))
            provenance = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            provenance = {"?": {"unreadable": str(prov_file)}}
    name = folder.name
    params = registry_params_m(name)
    if params is None:
        params = provenance_params_m(provenance)
    return ModelRun(name, folder, metrics, results, run, provenance, params)


def registry_params_m(name: str) -> float | None:
    """Parameters (millions) of a registered extractor; None for any unknown model."""
    if name.lower().startswith(("hf-hub:", "hf_hub:")) or Path(name).exists():
        return None  # never reach the network or read a stray local folder
    try:
        from plismbench.extractors.registry import get_extractor

        value = getattr(get_extractor(name), "params_m", None)
        return float(value) if value is not None and float(value) >= 0 else None
    except Exception:  # an unknown model, or the registry unavailable: no size
        return None


def provenance_params_m(provenance: dict[str, Any]) -> float | None:
    """A parameter count recorded in any slide's ``meta.json``, in millions."""
    for meta in provenance.values():
        if not isinstance(meta, dict):
            continue
        for key in _PARAM_KEYS_M:
            if isinstance(meta.get(key), (int, float)) and meta[key] > 0:
                return float(meta[key])
        for key in _PARAM_KEYS:
            if isinstance(meta.get(key), (int, float)) and meta[key] > 0:
                return float(meta[key]) / 1e6
    return None
