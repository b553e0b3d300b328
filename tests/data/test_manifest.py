"""A user's manifest: a 3-factor registered dataset parsed, validated, refused with one line."""

from __future__ import annotations

import csv
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plismbench.data.datasets.manifest import load_manifest, resolve_dataset
from plismbench.errors import InputError
from plismbench.store.design import Design

FACTORS = ("staining", "scanner", "thickness")
LEVELS = (("A", "B"), ("X", "Y", "Z"), ("3um", "5um"))
KEYS = ("t01", "t02", "t03", "t04")


def _rows(tmp_path: Path) -> list[dict[str, str]]:
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    rows = []
    for levels in product(*LEVELS):
        for key in KEYS:
            rows.append({"path": "img.png", "key": key, **dict(zip(FACTORS, levels, strict=True))})
    return rows


def _write(tmp_path: Path, rows: list[dict[str, str]], name: str = "m.csv") -> Path:
    path = tmp_path / name
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "key", *FACTORS])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_three_factor_csv_manifest(tmp_path: Path) -> None:
    spec = load_manifest(_write(tmp_path, _rows(tmp_path)))
    assert spec.factor_names == FACTORS and spec.n_units == 12 and spec.n_keys == 4
    assert [f.levels for f in spec.factors] == [tuple(sorted(lv)) for lv in LEVELS]
    assert spec.pair_types()[:3] == ("cross-scanner", "cross-staining", "cross-thickness")
    assert len(spec.pair_types()) == 7
    assert sorted(spec.paths) == spec.unit_ids()
    assert all(sorted(keys) == list(KEYS) for keys in spec.paths.values())
    cells = dict(spec.cells())
    design = Design.of_units({u: cells[u] for u in spec.unit_ids()}, spec.factor_names)
    assert design.require_crossed().n_units == 12


def test_yaml_manifest_same_as_csv(tmp_path: Path) -> None:
    import yaml

    rows = _rows(tmp_path)
    csv_spec = load_manifest(_write(tmp_path, rows))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "lab", "factors": list(FACTORS), "rows": rows}))
    spec = resolve_dataset(path)
    assert spec.name == "lab" and spec.factors == csv_spec.factors
    assert spec.paths == csv_spec.paths


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[5].update(scanner=""), "row 7: missing cell 'scanner'"),
        (lambda r: r.append(dict(r[0])), "duplicated key 't01' in unit A_X_3um"),
        (lambda r: r.pop(3), "unregistered key 't04': in 11 of 12 units"),
        (lambda r: [r.pop(0) for _ in range(4)], "missing cell: no rows for unit A_X_3um"),
        (lambda r: r[0].update(path="nope.png"), r"image .*nope\.png not found"),
    ],
)
def test_bad_manifest_one_line(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(tmp_path)
    mutate(rows)
    with pytest.raises(InputError, match=message) as info:
        load_manifest(_write(tmp_path, rows))
    assert "\n" not in info.value.message and "m.csv" in info.value.message


def test_manifest_cli_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from plismbench.cli.app import app

    rows = _rows(tmp_path)
    rows.append(dict(rows[0]))
    path = _write(tmp_path, rows)
    result = CliRunner().invoke(
        app, ["download", "--dataset", str(path), "--download-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "duplicated key" in lines[0]
