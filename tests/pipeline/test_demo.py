"""The main job: ``plismbench run`` with no arguments, exactly as a new user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_default_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "plismbench", "run", "--out-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "DEMO results" in out and "RANDOM weights" in out
    assert "uv run plismbench run --model h0-mini" in out  # how to run the real one
    for model in ("hed-histogram", "rgb-histogram", "vit-tiny-random"):
        assert model in out
    base = tmp_path / "out" / "metrics" / "48_tiles"
    report = base / "report.html"
    assert report.is_file() and report.stat().st_size > 100_000
    board = (base / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 4
    run = json.loads((base / "hed-histogram" / "run.json").read_text())
    assert run["n_slides"] == 91 and run["n_pairs"] == 4095
    assert not (tmp_path / "out" / "data" / "synthetic").exists()  # demo tiles cleaned up

    # a second run finds every stage complete and redoes nothing
    again = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    data = json.loads(again.stdout)
    assert data["demo"] is True and "extract" not in data["timings_s"]
    assert json.loads((base / "hed-histogram" / "run.json").read_text()) == run
