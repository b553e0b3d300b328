"""``plismbench.analyze(...)``: why is a model robust? Tidy tables per model.

Outputs, under ``<out-dir>/<model>/`` (one ``layer`` column: ``final`` or the layer):
``variance.csv``, ``variance_subsets.csv``, ``geometry.csv``, ``probes.csv``,
``neighbours.csv``, ``robustness.csv``, ``offset.csv``, with ``--reference-model`` also
``cka.csv`` and ``angles.csv``, and ``analysis.json`` (settings, content key, timings).
Each table is also gathered over every analysed model in ``<out-dir>/<table>.csv``.

Every input is checked before anything is computed, everything is computed before
anything is written, and each model's folder is swapped in whole: a bad input leaves no
partial output. A model whose inputs and settings are unchanged (content digests) is
reused, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.analysis.compute import (
    Settings,
    ViewResult,
    analyse_view,
    compare,
    sample_positions,
)
from plismbench.analysis.layers import layer_store, parse_layers
from plismbench.errors import InputError
from plismbench.evaluation import subset
from plismbench.store.design import Design, crossed_design
from plismbench.store.features import FeatureStore
from plismbench.utils.hashing import file_digest
from plismbench.utils.io import atomic_path, write_json

#: Bump when the meaning of an output changes (invalidates reuse).
FORMAT = 2
INFO_FILE = "analysis.json"
TABLES: tuple[str, ...] = (
    "variance", "variance_subsets", "geometry", "probes", "neighbours", "robustness", "cka",
    "angles", "offset",
)  # fmt: skip
#: Default number of sampled tile locations for probes, neighbours, RI and CKA.
DEFAULT_SAMPLE_TILES = 460


@dataclass(frozen=True)
class Plan:
    """One model, checked: its store, design, rows, sample and layers."""

    model: str
    store: FeatureStore
    design: Design
    rows: np.ndarray
    rows_text: str
    pos: np.ndarray
    layers: list[str]


@dataclass
class AnalysisResult:
    """What `analyze()` wrote."""

    out_dir: Path
    models: list[str]
    reused: list[str]
    tables: dict[str, pl.DataFrame]


def analyze(
    models: Sequence[str],
    features_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    reference_model: str | None = None,
    n_tiles: int | str | None = None,
    tile_subset: str | os.PathLike[str] | None = None,
    sample_tiles: int | None = DEFAULT_SAMPLE_TILES,
    k: int = 10,
    layers: str | None = None,
    folds: int = 5,
    probe_max_iter: int = 1000,
    robustness_index: bool = True,
    device: str = "auto",
    threads: int = 4,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> AnalysisResult:
    """Decompose, probe and compare the features of ``models``; see the module docstring."""
    say = log or (lambda message: None)
    names = list(dict.fromkeys(models))
    if not names:
        raise InputError("--model: name at least one model")
    ref_only = reference_model is not None and reference_model not in names
    if ref_only:
        names.append(str(reference_model))
    if k < 1:
        raise InputError(f"--k {k}: must be at least 1")
    if sample_tiles is not None and sample_tiles < 2:
        raise InputError(f"--sample-tiles {sample_tiles}: must be at least 2")
    if folds < 2:
        raise InputError(f"--folds {folds}: the probes need at least 2 folds")
    if probe_max_iter < 1:
        raise InputError(f"probe_max_iter {probe_max_iter}: must be at least 1")
    if reference_model is not None and sample_tiles is not None and sample_tiles < 4:
        raise InputError(f"--sample-tiles {sample_tiles}: debiased CKA needs at least 4")
    settings = Settings(
        k=k, folds=folds, probe_max_iter=probe_max_iter, robustness_index=robustness_index,
        use_gpu=_use_gpu(device), threads=threads,
    )  # fmt: skip
    plans = {
        m: _plan(
            m,
            features_dir,
            n_tiles,
            tile_subset,
            sample_tiles,
            "none" if ref_only and m == reference_model else layers,
            k,
        )
        for m in names
    }
    if reference_model is not None:
        _check_comparable(plans[reference_model], [plans[m] for m in names])
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out-dir {out}: exists and is not a folder")

    params = {
        "format": FORMAT, **asdict(settings), "sample_tiles": sample_tiles,
        "reference_model": reference_model,
    }  # fmt: skip
    params.pop("use_gpu"), params.pop("threads")
    digests: dict[str, str] = {}
    keys = {m: _key(plans[m], params, digests) for m in names}
    if reference_model is not None:
        ref_key = keys[reference_model]
        keys = {m: (v if m == reference_model else _hash([v, ref_key])) for m, v in keys.items()}
    reused = [m for m in names if not overwrite and _stored_key(out / m) == keys[m]]
    todo = [m for m in names if m not in reused]
    for m in todo:  # every value of every model is checked before anything is computed
        _check_values(plans[m], settings.threads)

    results: dict[str, dict[str, ViewResult]] = {}
    for m in todo:
        results[m] = _analyse_model(plans[m], settings, say)
        for layer, view in results[m].items():
            for r in view.tables.get("probes", []):
                if not r["converged"]:
                    say(
                        f"analyze: warning: {m} ({layer}) {r['target']} probe did not converge "
                        f"in {r['max_iter']} iterations; its accuracy may be low"
                    )
    comparisons: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if reference_model is not None:
        for m in todo:
            if m == reference_model:
                continue
            say(f"analyze: {m} vs {reference_model} (CKA, principal angles)")
            ref = results.get(reference_model) or {
                "final": _sample_only(plans[reference_model], settings)
            }
            comparisons[m] = compare(
                results[m]["final"].sample, ref["final"].sample, plans[m].design
            )

    staging = out / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for m in todo:
            _write_model(
                staging / m,
                plans[m],
                results[m],
                comparisons.get(m),
                keys[m],
                params,
                reference_model,
            )
        for m in todo:
            _swap(staging / m, out / m)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    tables = gather(out)
    return AnalysisResult(out, names, reused, tables)


def _use_gpu(device: str) -> bool | None:
    from plismbench.analysis.neighbours import faiss_gpu_available

    if device == "cpu":
        return False
    if device == "cuda":
        if not faiss_gpu_available():
            raise InputError("--device cuda: this faiss build has no GPU support (faiss-cpu)")
        return True
    if device != "auto":
        raise InputError(f"--device {device!r}: use auto, cpu or cuda")
    return None


def _plan(
    model: str,
    features_dir: str | os.PathLike[str],
    n_tiles: int | str | None,
    tile_subset: str | os.PathLike[str] | None,
    sample_tiles: int | None,
    layers: str | None,
    k: int,
) -> Plan:
    store = _open_store(features_dir, model)
    design = crossed_design([s.name for s in store.slides], str(store.root))
    rows, text = subset.resolve(
        store.n_tiles, n_tiles, None if tile_subset is None else Path(tile_subset)
    )
    if rows.size < 2:
        raise InputError(f"{store.root}: analyze needs at least 2 tiles per slide, got {rows.size}")
    pos = sample_positions(rows.size, sample_tiles)
    if k > pos.size * design.n_slides - 2:
        raise InputError(
            f"--k {k}: too large for {pos.size} sampled tiles x {design.n_slides} slides"
        )
    if store.dim < 2:
        raise InputError(
            f"{store.slides[0].path}: features have {store.dim} dimension(s); "
            "analyze needs at least 2 (L2-normalised 1-d features are all +-1)"
        )
    if pos.size < 2:
        raise InputError(f"{store.root}: analyze needs at least 2 sampled tiles per slide")
    chosen = parse_layers(layers, store)
    coords = store.coords()
    for layer in chosen:
        lstore = layer_store(store, layer)
        if lstore.dim < 2:
            raise InputError(
                f"{lstore.slides[0].path}: layer {layer} has {lstore.dim} dimension(s); "
                "analyze needs at least 2"
            )
        if not np.array_equal(lstore.coords(), coords):
            raise InputError(
                f"{lstore.slides[0].path}: coordinates differ from the final features "
                f"{store.slides[0].path}"
            )
    return Plan(model, store, design, rows, text, pos, chosen)


def _check_values(plan: Plan, threads: int) -> None:
    """Read every file once: finite values (the reader checks them), not all rows equal."""
    for layer in ["final", *plan.layers]:
        store = plan.store if layer == "final" else layer_store(plan.store, layer)
        first: np.ndarray | None = None
        varies = False
        for x in store.iter_normalised(plan.rows, threads):
            if first is None:
                first = x[0].copy()
            if not varies and float(np.abs(x - first).max()) > 1e-6:
                varies = True
        if not varies:
            raise InputError(
                f"{plan.store.root}: every tile of every slide has the same features "
                f"({'final' if layer == 'final' else 'layer ' + layer}); there is no variance "
                "to decompose"
            )


def _open_store(features_dir: str | os.PathLike[str], model: str) -> FeatureStore:
    """Open a store; a balanced sub-grid of PLISM's slides is a valid design here."""
    import inspect

    if "allow_missing" in inspect.signature(FeatureStore.open).parameters:
        return FeatureStore.open(features_dir, model, allow_missing=True)  # type: ignore[call-arg]
    return FeatureStore.open(features_dir, model)


def _check_comparable(ref: Plan, plans: list[Plan]) -> None:
    for p in plans:
        if p.design.slide_ids != ref.design.slide_ids:
            raise InputError(
                f"{p.store.root}: slides differ from the reference model's {ref.store.root}"
            )
        if not np.array_equal(p.rows, ref.rows):
            raise InputError(f"{p.store.root}: tile count differs from {ref.store.root}")
        if not np.array_equal(p.store.coords()[p.rows], ref.store.coords()[ref.rows]):
            raise InputError(
                f"{p.store.slides[0].path}: tile coordinates differ from the reference model's "
                f"{ref.store.slides[0].path}; CKA needs the same tiles"
            )


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _key(plan: Plan, params: dict[str, Any], digests: dict[str, str]) -> str:
    """Content key: settings, rows, sample and every file's digest (final and layers)."""
    files = [s.path for s in plan.store.slides]
    for layer in plan.layers:
        files += [s.path for s in layer_store(plan.store, layer).slides]
    for f in files:
        if str(f) not in digests:
            digests[str(f)] = file_digest(f)
    return _hash(
        {
            "params": params,
            "layers": plan.layers,
            "rows": hashlib.sha256(plan.rows.tobytes()).hexdigest(),
            "pos": hashlib.sha256(plan.pos.tobytes()).hexdigest(),
            "files": [
                [Path(f).relative_to(plan.store.root).as_posix(), digests[str(f)]] for f in files
            ],
        }
    )


def _stored_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / INFO_FILE).read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _analyse_model(
    plan: Plan, settings: Settings, say: Callable[[str], None]
) -> dict[str, ViewResult]:
    out: dict[str, ViewResult] = {}
    for layer in ["final", *plan.layers]:
        store = plan.store if layer == "final" else layer_store(plan.store, layer)
        say(f"analyze: {plan.model} ({'final features' if layer == 'final' else 'layer ' + layer})")
        view = analyse_view(store, plan.design, plan.rows, plan.pos, settings)
        if layer != "final":  # only the final sample is compared; a layer's is released
            view.sample = np.empty((0, 0, 0), np.float32)
        out[layer] = view
    return out


def _sample_only(plan: Plan, settings: Settings) -> ViewResult:
    """The reference's sampled features when the reference itself was reused."""
    sample = np.stack(
        [x[plan.pos] for x in plan.store.iter_normalised(plan.rows, settings.threads)]
    )
    return ViewResult({}, sample)


def _write_model(
    folder: Path,
    plan: Plan,
    views: dict[str, ViewResult],
    comparison: dict[str, list[dict[str, Any]]] | None,
    key: str,
    params: dict[str, Any],
    reference: str | None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        rows: list[dict[str, Any]] = []
        if table in ("cka", "angles"):
            if comparison is None:
                continue
            rows = [
                {"model": plan.model, "reference": reference, "layer": "final", **r}
                for r in comparison[table]
            ]
        else:
            for layer, view in views.items():
                rows += [
                    {"model": plan.model, "layer": layer, **r} for r in view.tables.get(table, [])
                ]
        if rows:
            pl.DataFrame(rows).write_csv(folder / f"{table}.csv")
    info = {
        "model": plan.model,
        "key": key,
        "params": params,
        "n_tiles": int(plan.rows.size),
        "tiles": plan.rows_text,
        "sample_tiles": int(plan.pos.size),
        "stainings": list(plan.design.stainings),
        "scanners": list(plan.design.scanners),
        "n_slides": plan.design.n_slides,
        "layers": ["final", *plan.layers],
        "dim": plan.store.dim,
        "timings_s": {
            layer: {k: round(v, 3) for k, v in view.timings.items()}
            for layer, view in views.items()
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(folder / INFO_FILE, info)


def _swap(new: Path, target: Path) -> None:
    """Replace ``target`` by the finished folder ``new`` (old one removed after the move)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def load_tables(analysis_dir: str | os.PathLike[str]) -> dict[str, pl.DataFrame]:
    """Each table concatenated over the model folders (layer as text)."""
    root = Path(analysis_dir)
    found = root.iterdir() if root.is_dir() else iter(())
    folders = sorted(p for p in found if (p / INFO_FILE).is_file())
    out: dict[str, pl.DataFrame] = {}
    for table in TABLES:
        frames = [
            pl.read_csv(f / f"{table}.csv", schema_overrides={"layer": pl.Utf8})
            for f in folders
            if (f / f"{table}.csv").is_file()
        ]
        if frames:
            out[table] = pl.concat(frames, how="diagonal_relaxed")
    return out


def gather(out_dir: str | os.PathLike[str]) -> dict[str, pl.DataFrame]:
    """Concatenate each table over the model folders into ``<out-dir>/<table>.csv``."""
    out = Path(out_dir)
    tables = load_tables(out)
    for table in TABLES:
        if table in tables:
            with atomic_path(out / f"{table}.csv") as tmp:
                tables[table].write_csv(tmp)
        else:
            (out / f"{table}.csv").unlink(missing_ok=True)  # no stale gathered table
    return tables
