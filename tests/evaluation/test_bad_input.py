"""Every bad input: one clear line naming the file and the problem, exit != 0, no output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from featurestore import plism_like, write_store
from typer.testing import CliRunner

from plismbench.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


def _store(tmp: Path, n: int = 20) -> dict[str, np.ndarray]:
    slides = plism_like(np.random.default_rng(0), n=n)
    write_store(tmp / "f", "m", slides)
    return slides


def _npy(tmp: Path, name: str | None = None) -> Path:
    folder = tmp / "f" / "m"
    return folder / (name or sorted(p.name for p in folder.iterdir())[0]) / "features.npy"


def _edit(path: Path, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    np.save(path, fn(np.load(path)))


def nan_row(t: Path) -> None:
    def f(a):
        a[7, 3:] = np.nan
        return a

    _edit(_npy(t), f)


def nan_coords(t: Path) -> None:
    _edit(_npy(t), lambda a: np.where(np.arange(len(a))[:, None] == 9, np.nan, a))


def inf_value(t: Path) -> None:
    def f(a):
        a[3, 5] = np.inf
        return a

    _edit(_npy(t), f)


def zero_row(t: Path) -> None:
    def f(a):
        a[11, 3:] = 0
        return a

    _edit(_npy(t), f)


def int_dtype(t: Path) -> None:
    _edit(_npy(t), lambda a: a.astype(np.int64))


def one_dim(t: Path) -> None:
    _edit(_npy(t), lambda a: a.ravel())


def coords_only(t: Path) -> None:
    for p in (t / "f" / "m").glob("*/features.npy"):
        _edit(p, lambda a: a[:, :3])


def fewer_tiles(t: Path) -> None:
    _edit(_npy(t), lambda a: a[:-1])


def other_coords(t: Path) -> None:
    def f(a):
        a[4, 1] += 224
        return a

    _edit(_npy(t), f)


def truncated(t: Path) -> None:
    p = _npy(t)
    p.write_bytes(p.read_bytes()[:-100])


def garbage(t: Path) -> None:
    _npy(t).write_bytes(b"this is not a numpy file")


def bad_slide_id(t: Path) -> None:
    src = _npy(t).parent
    src.rename(src.parent / "noscannerfield")


def one_slide(t: Path) -> None:
    import shutil

    for p in sorted((t / "f" / "m").iterdir())[1:]:
        shutil.rmtree(p)


CASES = {
    "nan": (nan_row, ["row 7", "non-finite"]),
    "nan-coords": (nan_coords, ["row 9", "non-finite coordinates"]),
    "inf": (inf_value, ["row 3", "non-finite"]),
    "zero-norm": (zero_row, ["row 11", "zero norm"]),
    "int-dtype": (int_dtype, ["dtype int64", "not a float"]),
    "1-d": (one_dim, ["2-D"]),
    "no-features": (coords_only, ["no feature columns"]),
    "tile-count": (fewer_tiles, ["shape", "differs"]),
    "coords": (other_coords, ["coordinates differ", "row 4", "vs [16.0, 224.0, 896.0]"]),
    "truncated": (truncated, ["unreadable or truncated"]),
    "garbage": (garbage, ["not a .npy file"]),
    "slide-id": (bad_slide_id, ["noscannerfield", "cannot be parsed"]),
    "one-slide": (one_slide, ["need at least 2"]),
}


def _run(tmp: Path, *extra: str):
    return runner.invoke(
        app,
        ["evaluate", "--model", "m", "--features-dir", str(tmp / "f"),
         "--metrics-dir", str(tmp / "out"), "--quiet", "--allow-missing", *extra],
    )  # fmt: skip


def _assert_no_complete_output(tmp: Path) -> None:
    for name in ["metrics.csv", "metrics.parquet", "results.csv", "results.md", "run.json"]:
        assert not list((tmp / "out").rglob(name)) if (tmp / "out").exists() else True, name


@pytest.mark.parametrize("case", CASES)
def test_bad_feature_files(tmp_path: Path, case: str) -> None:
    _store(tmp_path)
    breaker, words = CASES[case]
    breaker(tmp_path)
    res = _run(tmp_path)
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "Error:" in text and "Traceback" not in text
    for w in words:
        assert w in text, (w, text)
    if case not in ("one-slide",):
        assert "/f/m/" in text  # the message names the file
    _assert_no_complete_output(tmp_path)


def test_bad_input_after_a_good_run_leaves_old_outputs_marked(tmp_path: Path) -> None:
    # "marked": the old outputs no longer claim to be complete (no run.json, which the
    # leaderboard requires), and no stale table is left to be mistaken for current.
    _store(tmp_path)
    assert _run(tmp_path).exit_code == 0
    assert list((tmp_path / "out").rglob("run.json"))
    nan_row(tmp_path)
    res = _run(tmp_path)
    assert res.exit_code != 0 and "non-finite" in res.output
    _assert_no_complete_output(tmp_path)
    res = runner.invoke(app, ["leaderboard", "--metrics-dir", str(tmp_path / "out")])
    assert res.exit_code != 0 and "no finished evaluations" in res.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--top-k", "0,1"], ["--top-k", "[0]"]),
        (["--top-k", "40,41"], ["--top-k", "[40, 41]", "[1, 39]"]),
        (["--top-k", "a,b"], ["comma-separated"]),
        (["--n-tiles", "21"], ["--n-tiles 21", "exceeds the 20"]),
        (["--n-tiles", "lots"], ["--n-tiles 'lots'"]),
        (["--device", "tpu"], ["--device 'tpu'"]),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], words: list[str]) -> None:
    _store(tmp_path)
    res = _run(tmp_path, *args)
    assert res.exit_code != 0
    for w in words:
        assert w in res.output, (w, res.output)
    _assert_no_complete_output(tmp_path)


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.array([0, 1, 1]), ["not unique"]),
        (np.array([0, 25]), ["[0, 20)"]),
        (np.array([0.0, 1.0]), ["1-D integer"]),
        (np.zeros((2, 2), dtype=int), ["1-D integer"]),
    ],
)
def test_bad_tile_subset(tmp_path: Path, array: np.ndarray, words: list[str]) -> None:
    _store(tmp_path)
    np.save(tmp_path / "subset.npy", array)
    res = _run(tmp_path, "--tile-subset", str(tmp_path / "subset.npy"))
    assert res.exit_code != 0 and "subset.npy" in res.output
    for w in words:
        assert w in res.output
    _assert_no_complete_output(tmp_path)


def test_missing_directories(tmp_path: Path) -> None:
    res = _run(tmp_path)
    assert res.exit_code != 0 and "features directory not found" in res.output
    _store(tmp_path)
    res = runner.invoke(
        app, ["evaluate", "--model", "other", "--features-dir", str(tmp_path / "f"),
              "--metrics-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "no features for model 'other'" in res.output and "models found there: m" in res.output
