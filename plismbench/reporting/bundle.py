"""``results.json``: one citable bundle per evaluated model.

Dataset revision, model hub id and revision, weights digest, package version, tile
subset, and every aggregate with its 95% interval (hierarchical bootstrap over stainings
and scanners).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from plismbench import __version__
from plismbench.reporting.inputs import ModelRun
from plismbench.reporting.intervals import Intervals, model_intervals
from plismbench.stats.bootstrap import LEVEL, N_BOOT, SEED
from plismbench.store.evaluation import BUNDLE_FILE
from plismbench.utils.io import write_json


def _shared(run: ModelRun, *path: str) -> Any:
    """A ``meta.json`` value shared by every slide (None if absent or varying)."""
    values = []
    for meta in run.provenance.values():
        value: Any = meta
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value)
    distinct = {repr(v) for v in values}
    return values[0] if values and len(distinct) == 1 else None


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def bundle(run: ModelRun, intervals: Intervals | None = None) -> dict[str, Any]:
    """The ``results.json`` content of one model."""
    from plismbench.metrics.aggregate import metric_names
    from plismbench.stats.summary import results_ci

    intervals = intervals or model_intervals(run)
    names = [n for n in metric_names(run.top_k) if n in run.metrics.columns]
    table = results_ci(run.metrics, names) if names else None
    source = _shared(run, "source")
    return {
        "plismbench": __version__,
        "model": run.name,
        "model_hub_id": _shared(run, "hub_id"),
        "model_hub_revision": _shared(run, "hub_revision") or _shared(run, "revision"),
        "weights_sha256": _shared(run, "weights_sha256"),
        "precision": _shared(run, "precision"),
        "dataset": {
            "source": source,
            "revision": source.get("revision") if isinstance(source, dict) else None,
        },
        "evaluated_with": run.run.plismbench,
        # The evaluation this bundle describes: compare with run.json to detect staleness.
        "evaluation": {"cache_key": run.run.cache_key, "finished_at": run.run.finished_at},
        "n_slides": run.run.n_slides,
        "n_pairs": run.run.n_pairs,
        "n_tiles": run.run.n_tiles,
        "tile_subset": run.run.tile_subset,
        "top_k": run.top_k,
        "complete": not run.run.partial,
        "leaderboard": {
            key: {"value": _num(v), "ci_low": _num(intervals.get(key)[0]),
                  "ci_high": _num(intervals.get(key)[1])}
            for key, v in intervals.values.items()
        },
        "results": [] if table is None else table.to_dicts(),
        "intervals": {
            "method": "hierarchical bootstrap over stainings and scanners, percentile, "
            "widened to the jackknife t interval when wider (docs/statistics.md)",
            "n_boot": N_BOOT, "seed": SEED, "level": LEVEL,
        },
    }


def write_bundle(run: ModelRun, intervals: Intervals | None = None) -> Path:
    """Write ``<model folder>/results.json`` (atomically) and return its path."""
    path = run.folder / BUNDLE_FILE
    write_json(path, bundle(run, intervals))
    return path


def write_results_bundle(model_folder: str | os.PathLike[str]) -> Path:
    """``results.json`` for a finished evaluation folder (for callers outside the report)."""
    from plismbench.reporting.inputs import _load_model

    return write_bundle(_load_model(Path(model_folder)))
