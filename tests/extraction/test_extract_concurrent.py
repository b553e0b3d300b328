"""Real processes on one export dir: identical runs split the slides, other settings are refused,
Ctrl-C leaves a resumable folder; offline Hub and unwritable outputs are one line, exit 2."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner
from waiting import wait_until

from plismbench.cli import app
from plismbench.data.sources import open_source
from plismbench.extraction import extract

PLUGIN = str(Path(__file__).parent / "slow_plugin.py")
SLIDES = [f"S{k}" for k in range(6)]


def _tiles(root: Path, n_tiles: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for slide in SLIDES:
        (root / slide).mkdir(parents=True)
        for i in range(n_tiles):
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / slide / f"tile_16_{i * 224}_0.png")
    return root


def _start(out: Path, tiles: Path, *extra: str, **env: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "plismbench", "extract", "--plugin", PLUGIN, "--model",
           "slow-rgb", "--out-dir", str(out), "--tiles-dir", str(tiles), "--workers", "0",
           "-b", "2", "--chunk-rows", "2", "-q", *extra]  # fmt: skip
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _check_complete(out: Path, tiles: Path) -> None:
    """Every slide finished once, equal to a clean in-process run; nothing stray left."""
    clean = extract("rgb-histogram", open_source(tiles_dir=tiles), out.parent / "clean",
                    workers=0)  # fmt: skip
    assert clean.slides_done == SLIDES
    model = out / "slow-rgb"
    for slide in SLIDES:
        a = np.load(model / slide / "features.npy")
        b = np.load(out.parent / "clean" / "rgb-histogram" / slide / "features.npy")
        np.testing.assert_array_equal(a, b)
        assert json.loads((model / slide / "meta.json").read_text())["tile_count"] == 4
    stray = [p.name for p in model.rglob("*") if p.name in (".partial", ".claim")]
    stray += [p.name for p in model.rglob("*chunk_*")] + [p.name for p in model.rglob("*.tmp")]
    assert stray == []


def test_ctrl_c_then_two_identical_runs_resume_and_split_the_slides(tmp_path: Path) -> None:
    tiles = _tiles(tmp_path / "tiles")
    out = tmp_path / "out"
    proc = _start(out, tiles, SLOW_SLEEP="0.4")
    def first_chunk() -> bool:
        assert proc.poll() is None, proc.communicate()[1][-2000:]  # it died: say why
        return bool(list(out.glob("slow-rgb/*/.partial/chunk_*.npy")))

    wait_until(first_chunk, "the first chunk of the slow run")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted; run the same command again to resume"
    assert "Traceback" not in err
    for slide_dir in (out / "slow-rgb").iterdir():
        if slide_dir.is_dir():  # nothing that looks finished without being so
            assert (slide_dir / "features.npy").exists() == (slide_dir / "meta.json").exists()
            assert not (slide_dir / ".claim").exists()
    finished = len(list(out.glob("slow-rgb/*/meta.json")))
    # The same command, twice at once: both resume, each slide is extracted exactly once.
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"SLOW_BARRIER": str(barrier), "SLOW_SLEEP": "0.1"}
    procs = [_start(out, tiles, **env) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "delete" not in err and "Traceback" not in err
    done = [int(re.search(r"(\d+) slides done", err).group(1)) for _, err in outs]  # type: ignore[union-attr]
    assert min(done) >= 1 and sum(done) == len(SLIDES) - finished
    _check_complete(out, tiles)


def test_bf16_and_fp32_runs_never_mix(tmp_path: Path) -> None:
    tiles = _tiles(tmp_path / "tiles")
    procs = [
        _start(tmp_path / "out", tiles, "--precision", precision, SLOW_SLEEP="0.3")
        for precision in ("bf16", "fp32")
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], [err[-1500:] for _, err in outs]
    winner = ("bf16", "fp32")[codes.index(0)]
    loser_err = outs[codes.index(2)][1]
    assert "--overwrite" in loser_err and "Traceback" not in loser_err
    for slide in SLIDES:
        meta = json.loads((tmp_path / "out" / "slow-rgb" / slide / "meta.json").read_text())
        assert meta["precision"] == winner


runner = CliRunner()


@pytest.mark.parametrize("where", ["proc", "under-a-file"])
def test_unwritable_export_dir_is_one_line_before_any_loading(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    target = "/proc/plismbench-x" if where == "proc" else str(tmp_path / "file" / "out")
    # A model that cannot load and a tile folder that does not exist: the output check comes first.
    res = runner.invoke(app, ["extract", "--model", "h0-mini", "--out-dir", target,
                              "--tiles-dir", str(tmp_path / "missing")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: --out-dir ") and target in res.output
    assert "not writable" in res.output or "is a file, not a folder" in res.output
    assert res.output.count("\n") == 1
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit)


def test_streaming_offline_is_one_line(tmp_path: Path) -> None:
    args = ["extract", "--model", "rgb-histogram", "--out-dir", str(tmp_path), "--streaming"]
    res = runner.invoke(app, args, env={"HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 2, res.output
    assert "HF_HUB_OFFLINE" in res.output
    assert isinstance(res.exception, SystemExit)


def test_layers_on_a_model_without_layers_is_one_line(tmp_path: Path) -> None:
    tiles = _tiles(tmp_path / "tiles", n_tiles=1)
    res = runner.invoke(app, ["extract", "--model", "hed-histogram", "--out-dir",
                              str(tmp_path / "o"), "--tiles-dir", str(tiles),
                              "--layers", "4"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "no transformer layers" in res.output
    assert isinstance(res.exception, SystemExit)
