"""A user's registered dataset from a manifest (CSV or YAML), validated before anything runs.

A manifest lists one image per row: its ``path``, its registered ``key`` (the same tissue in
every unit) and one column per factor, e.g.::

    path,key,staining,scanner,thickness
    imgs/A_X_3um/t01.png,t01,A,X,3um
    ...

A YAML manifest holds the same rows under ``rows:`` (a list of mappings, or the name of a CSV
file next to it), with optional ``name``, ``factors`` (their order), ``tile_size``, ``crop``
(``native`` or ``centre``) and ``keys_independent``. Relative paths are read from the
manifest's folder. A unit is one combination of factor levels; every unit must hold every
registered key exactly once, and every combination of levels must be present. Anything else
is refused with one line naming the manifest and the problem.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from plismbench.data.datasets.spec import DatasetSpec, Factor, Source, TileGeometry
from plismbench.data.formats import IMAGE_SUFFIXES
from plismbench.errors import InputError

#: Manifest columns that are not factors.
PATH, KEY = "path", "key"
#: Suffixes of a manifest file.
MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".yaml", ".yml")


def is_manifest(name: str | os.PathLike[str]) -> bool:
    """Whether ``--dataset`` names a manifest file rather than a registered dataset."""
    return str(name).lower().endswith(MANIFEST_SUFFIXES)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read manifest: {exc}") from exc
    for i, row in enumerate(rows):
        if None in row:  # more cells than the header
            raise InputError(f"{path}: row {i + 2} has more cells than the header")
    return header, rows


def _read_yaml(path: Path) -> tuple[dict[str, Any], list[str], list[dict[str, str]]]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read manifest: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict) or "rows" not in doc:
        raise InputError(f"{path}: a YAML manifest is a mapping with a 'rows' entry")
    rows = doc["rows"]
    if isinstance(rows, str):
        return (doc, *_read_csv(path.parent / rows))
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path}: 'rows' must be a list of mappings or a CSV file name")
    header = []
    for r in rows:
        header += [str(k) for k in r if str(k) not in header]
    table = [{str(k): "" if v is None else str(v) for k, v in r.items()} for r in rows]
    return doc, header, table


def load_manifest(path: str | os.PathLike[str], *, check_files: bool = True) -> DatasetSpec:
    """Parse and validate a manifest into a :class:`DatasetSpec` (``source.kind == "local"``).

    ``spec.paths[unit][key]`` is the image of one unit at one registered key.
    """
    where = Path(path)
    if not where.is_file():
        raise InputError(f"{where}: manifest not found")
    suffix = where.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InputError(f"{where}: a manifest is a {'/'.join(MANIFEST_SUFFIXES)} file")
    doc: dict[str, Any] = {}
    if suffix == ".csv":
        header, rows = _read_csv(where)
    else:
        doc, header, rows = _read_yaml(where)

    for column in (PATH, KEY):
        if column not in header:
            raise InputError(f"{where}: no {column!r} column (columns: {', '.join(header)})")
    factors = [str(f) for f in doc.get("factors", [c for c in header if c not in (PATH, KEY)])]
    unknown = [f for f in factors if f not in header]
    if unknown:
        raise InputError(f"{where}: factor {unknown[0]!r} is not a column")
    if not factors:
        raise InputError(f"{where}: no factor column besides {PATH!r} and {KEY!r}")
    if not rows:
        raise InputError(f"{where}: no rows")

    base = where.parent
    paths: dict[str, dict[str, str]] = defaultdict(dict)
    first_row: dict[tuple[str, str], int] = {}
    cells: dict[str, tuple[str, ...]] = {}
    for i, row in enumerate(rows):
        line = f"row {i + 2}" if suffix == ".csv" else f"row {i + 1}"
        for column in (PATH, KEY, *factors):
            if not (row.get(column) or "").strip():
                raise InputError(f"{where}: {line}: missing cell {column!r}")
        levels = tuple(row[f].strip() for f in factors)
        bad = next((lv for lv in levels if "_" in lv or "/" in lv), None)
        if bad is not None:
            raise InputError(f"{where}: {line}: level {bad!r} may not contain '_' or '/'")
        unit = "_".join(levels)
        key = row[KEY].strip()
        if (unit, key) in first_row:
            raise InputError(
                f"{where}: {line}: duplicated key {key!r} in unit {unit} "
                f"(also row {first_row[(unit, key)]})"
            )
        first_row[(unit, key)] = i + (2 if suffix == ".csv" else 1)
        image = Path(row[PATH].strip())
        image = image if image.is_absolute() else base / image
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{where}: {line}: {image.name} is not an image ({IMAGE_SUFFIXES})")
        if check_files and not image.is_file():
            raise InputError(f"{where}: {line}: image {image} not found")
        paths[unit][key] = str(image)
        cells[unit] = levels

    # Every combination of levels, and every key in every unit.
    level_sets = [sorted({c[j] for c in cells.values()}) for j in range(len(factors))]
    n_cells = 1
    for lv in level_sets:
        n_cells *= len(lv)
    if len(cells) != n_cells:
        from itertools import product

        absent = next("_".join(c) for c in product(*level_sets) if "_".join(c) not in cells)
        shown = " x ".join(f"{len(lv)} {f}" for f, lv in zip(factors, level_sets, strict=True))
        raise InputError(
            f"{where}: missing cell: no rows for unit {absent} ({len(cells)} of {n_cells} "
            f"units of {shown})"
        )
    all_keys = sorted({k for unit_keys in paths.values() for k in unit_keys})
    for unit in sorted(paths):
        lacking = [k for k in all_keys if k not in paths[unit]]
        if lacking:
            holders = sum(lacking[0] in paths[u] for u in paths)
            raise InputError(
                f"{where}: unregistered key {lacking[0]!r}: in {holders} of {len(paths)} units, "
                f"not in {unit} ({len(lacking)} key(s) missing there); every unit needs "
                "every registered key"
            )
    geometry = TileGeometry(
        tile_size=int(doc.get("tile_size", 224)), crop=doc.get("crop", "centre")
    )
    if geometry.crop not in ("native", "centre"):
        raise InputError(f"{where}: crop {geometry.crop!r}: choose native or centre")
    return DatasetSpec(
        name=str(doc.get("name", where.stem)),
        title=f"manifest {where.name}",
        factors=tuple(Factor(f, tuple(lv)) for f, lv in zip(factors, level_sets, strict=True)),
        unit_pattern="_".join(f"{{{f}}}" for f in factors),
        key_fields=(KEY,),
        n_keys=len(all_keys),
        geometry=geometry,
        source=Source(kind="local", location=str(where.resolve())),
        keys_independent=bool(doc.get("keys_independent", False)),
        score="mean of median cosine and median top-1/5/10 retrieval over every unit pair",
        paths={u: dict(sorted(paths[u].items())) for u in sorted(paths)},
    )


def resolve_dataset(name: str | os.PathLike[str]) -> DatasetSpec:
    """``--dataset NAME|manifest``: a registered dataset, or a validated manifest."""
    from plismbench.data.datasets.spec import get_dataset

    if is_manifest(name):
        return load_manifest(name)
    return get_dataset(str(name))
