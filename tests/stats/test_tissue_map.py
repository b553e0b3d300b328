"""--tissue-map cannot mislead: every bad map is one line naming the row, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import pairs_frame, synthetic_metrics, write_evaluation
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.errors import InputError
from plismbench.stats.breakdown import read_tissue_map


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x,y,tissue\n0,0,a\nabc,0,b\n", "line 3: x 'abc' is not an integer"),
        ("x,y,tissue\n0,0,a\n,0,b\n", "line 3: x blank"),
        ("x,y,tissue\n224.7,0,a\n", "line 2: x '224.7' is not an integer"),
        ("x,y,tissue\n0,1.5,a\n", "line 2: y '1.5' is not an integer"),
        ("x,y,tissue\n0,0,a\n1,1,\n", "line 3: blank tissue label"),
        ("x,y,tissue\n0,0,a\n1,1,  \n", "line 3: blank tissue label"),
        ("x,y,tissue\n0,0,tumour\n5,5,b\n0,0,stroma\n", r"line 4: \(0, 0\) is 'stroma' but line 2"),
        ("x,y\n1,2\n", "missing columns"),
        ("x,y,tissue\n", "no rows"),
    ],
    ids=["non-numeric", "blank-x", "fractional-x", "fractional-y", "blank-label",
         "space-label", "conflict", "columns", "empty"],
)  # fmt: skip
def test_bad_maps_are_refused_naming_the_row(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        read_tissue_map(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_tsv_and_integer_valued_floats_and_identical_duplicates(tmp_path: Path) -> None:
    tsv = tmp_path / "map.tsv"
    tsv.write_text("x\ty\ttissue\n0\t0\ttumour\n224\t0\tstroma\n224\t0\tstroma\n448.0\t0\ta\n")
    assert read_tissue_map(tsv) == {(0, 0): "tumour", (224, 0): "stroma", (448, 0): "a"}


def _evaluation(tmp_path: Path) -> Path:
    frame = pairs_frame(2, 2)
    metrics = synthetic_metrics(frame, np.random.default_rng(1), 0.5, top_k=(10,))
    folder = write_evaluation(tmp_path / "m" / "4_tiles" / "x", metrics, top_k=(10,))
    (folder / "ranks").mkdir()
    np.save(folder / "ranks" / "tiles.npy", np.array([[i, 16, 224 * i, 0] for i in range(4)]))
    for a, b in zip(frame["slide_a"], frame["slide_b"], strict=True):
        np.save(folder / "ranks" / f"{a}---{b}.npy", np.array([[1, 50, 2, 3], [11, 1, 1, 40]]))
    return folder


def _run(tmp_path: Path, *extra: str) -> object:
    return CliRunner().invoke(app, ["breakdown", "x", "--metrics-dir", str(tmp_path / "m"),
                                    "--n-boot", "20", *extra])  # fmt: skip


@pytest.mark.parametrize(
    "text", ["x,y,tissue\nabc,0,b\n", "x,y,tissue\n0,0,\n", "x,y,tissue\n0.5,0,a\n",
             "x,y,tissue\n0,0,a\n0,0,b\n", "x,y\n0,0\n"],
)  # fmt: skip
def test_cli_bad_map_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, text: str) -> None:
    folder = _evaluation(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    res = _run(tmp_path, "--tissue-map", str(bad))
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    assert "Traceback" not in res.output  # type: ignore[attr-defined]
    assert not (folder / "breakdown.csv").exists()


def test_partial_map_warns_with_the_count_and_min_coverage_refuses(tmp_path: Path) -> None:
    folder = _evaluation(tmp_path)
    part = tmp_path / "part.csv"
    part.write_text("x,y,tissue\n0,0,tumour\n224,0,stroma\n")  # 2 of the 4 tiles
    res = _run(tmp_path, "--tissue-map", str(part))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    text = " ".join(res.output.split())  # type: ignore[attr-defined]
    assert "2 of 4 evaluated tiles are not in the map" in text
    (folder / "breakdown.csv").unlink()
    res = _run(tmp_path, "--tissue-map", str(part), "--min-coverage", "0.9")
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert "covers 2 of 4" in " ".join(res.output.split())  # type: ignore[attr-defined]
    assert not (folder / "breakdown.csv").exists()
