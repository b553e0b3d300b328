"""Outputs you can trust blindly: never stale, complete or absent, locked, recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from featurestore import plism_like, write_store
from typer.testing import CliRunner

import plismbench
from plismbench.cli import app
from plismbench.data.catalogue import plism_slide_ids

TABLES = ("metrics.csv", "metrics.parquet", "results.csv", "results.md")

runner = CliRunner(env={"COLUMNS": "200"})


def _store(tmp: Path, n: int = 20, **kw) -> dict[str, np.ndarray]:
    slides = plism_like(np.random.default_rng(0), n=n, **kw)
    write_store(tmp / "f", "m", slides)
    return slides


def _eval(tmp: Path, out: str = "out", **kw):
    kw.setdefault("allow_missing", True)
    return plismbench.evaluate("m", tmp / "f", tmp / out, progress=False, **kw)


def test_in_place_edit_with_restored_mtime_recomputes(tmp_path: Path) -> None:
    _store(tmp_path)
    first = _eval(tmp_path)
    path = sorted((tmp_path / "f" / "m").glob("*/features.npy"))[0]
    stat = path.stat()
    data = np.load(path)
    data[:, 3:] = np.random.default_rng(9).standard_normal(data[:, 3:].shape)
    np.save(path, data)  # same size, same shape
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -r`
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second = _eval(tmp_path)
    assert not second.reused and second.pairs_computed == 6  # a new key: nothing stale kept
    assert not second.metrics.equals(first.metrics)
    assert second.metrics.equals(_eval(tmp_path, "fresh").metrics)


def test_copied_results_folder_is_reused(tmp_path: Path) -> None:
    _store(tmp_path)
    first = _eval(tmp_path)
    shutil.copytree(tmp_path / "out", tmp_path / "copy")  # cp -r: new mtimes, same content
    again = _eval(tmp_path, "copy")
    assert again.reused and again.metrics.equals(first.metrics)
    run = json.loads((again.output_dir / "run.json").read_text())
    assert set(run["digests"]) == {s for s in run["slide_ids"]}


@pytest.mark.parametrize("deleted", [*TABLES, "run.json"])
def test_deleted_output_is_regenerated(tmp_path: Path, deleted: str) -> None:
    _store(tmp_path)
    first = _eval(tmp_path)
    before = {f: (first.output_dir / f).read_bytes() for f in ("metrics.csv", "results.md")}
    (first.output_dir / deleted).unlink()
    again = _eval(tmp_path)
    assert not again.reused and again.pairs_computed == 0  # from the cache, not recomputed
    for f in [*TABLES, "run.json"]:
        assert (again.output_dir / f).is_file(), f
    for f, data in before.items():
        assert (again.output_dir / f).read_bytes() == data


def test_failed_rerun_leaves_no_complete_outputs(tmp_path: Path) -> None:
    _store(tmp_path)
    first = _eval(tmp_path)
    path = sorted((tmp_path / "f" / "m").glob("*/features.npy"))[0]
    data = np.load(path)
    data[5, 4] = np.nan
    np.save(path, data)
    with pytest.raises(plismbench.errors.InputError, match="row 5"):
        _eval(tmp_path)
    for f in [*TABLES, "run.json"]:
        assert not (first.output_dir / f).exists(), f


def _partial_plism(tmp: Path, n_slides: int) -> list[str]:
    ids = plism_slide_ids()[:n_slides]
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 4))
    write_store(tmp / "f", "m", {s: base + rng.standard_normal((6, 4)) for s in ids})
    return ids


def test_partial_plism_store_needs_allow_missing(tmp_path: Path) -> None:
    ids = _partial_plism(tmp_path, 4)
    res = runner.invoke(app, ["evaluate", "-m", "m", "--features-dir", str(tmp_path / "f"),
                              "--metrics-dir", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "4 of the 91 PLISM slides" in text and "--allow-missing" in text
    assert plism_slide_ids()[4] in text  # names what is missing
    res = runner.invoke(app, ["evaluate", "-m", "m", "--features-dir", str(tmp_path / "f"),
                              "--metrics-dir", str(tmp_path / "out"), "-q",
                              "--allow-missing"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "out" / "6_tiles" / "m" / "run.json").read_text())
    assert run["slide_ids"] == sorted(ids) and run["complete"] is False
    assert run["tile_subset"] == "all-6" and run["n_tiles"] == 6 and run["top_k"] == [1, 3, 5, 10]


def test_non_plism_store_is_complete(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    slides = {f"S{i}_X{i % 2}": rng.standard_normal((7, 3)) for i in range(3)}
    write_store(tmp_path / "f", "m", slides)
    res = plismbench.evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    run = json.loads((res.output_dir / "run.json").read_text())
    assert run["complete"] is True and len(run["slide_ids"]) == 3


def test_slide_folder_without_features_is_an_error(tmp_path: Path) -> None:
    _store(tmp_path)
    (tmp_path / "f" / "m" / "GIV_S60_to_GMH_S60.tif").mkdir()
    with pytest.raises(plismbench.errors.InputError, match=r"without features\.npy.*GIV_S60"):
        _eval(tmp_path)


def test_second_process_exits_naming_the_lock_holder(tmp_path: Path) -> None:
    _store(tmp_path)
    out = tmp_path / "out" / "20_tiles" / "m"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from plismbench.utils.locks import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = runner.invoke(app, ["evaluate", "-m", "m", "--features-dir", str(tmp_path / "f"),
                                  "--metrics-dir", str(tmp_path / "out"), "-q",
                                  "--allow-missing"])  # fmt: skip
        assert res.exit_code == 2
        text = " ".join(res.output.split())
        assert f"pid {holder.pid}" in text and "Traceback" not in text
        assert len(res.output.strip().splitlines()) <= 3  # one (wrapped) line
    finally:
        holder.kill()
        holder.wait()
    assert _eval(tmp_path).metrics.height == 6  # free again


def test_top_k_above_the_candidates_is_dropped_with_a_notice(tmp_path: Path) -> None:
    _store(tmp_path, n=3)  # 5 candidates per query: k = 10 cannot apply
    notes: list[str] = []
    res = _eval(tmp_path, notice=notes.append)
    assert res.top_k == (1, 3, 5) and len(notes) == 1 and "[10]" in notes[0]


def test_meta_naming_another_model_warns(tmp_path: Path) -> None:
    slides = _store(tmp_path)
    for name in slides:
        (tmp_path / "f" / "m" / name / "meta.json").write_text(json.dumps({"model": "uni"}))
    notes: list[str] = []
    _eval(tmp_path, notice=notes.append)
    assert len(notes) == 1 and "'uni'" in notes[0] and "'m'" in notes[0]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (np.zeros((0, 8), dtype=np.float32), r"no tiles \(zero rows\)"),
        (b"level,x,y,f0\n16,0,0,1.0\n", r"not a \.npy file"),
    ],
)
def test_header_messages_say_what_is_wrong(tmp_path: Path, content, words: str) -> None:
    _store(tmp_path)
    path = sorted((tmp_path / "f" / "m").glob("*/features.npy"))[0]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(plismbench.errors.InputError, match=words):
        _eval(tmp_path)
