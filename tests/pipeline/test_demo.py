"""The main job: ``plismbench run`` with no arguments, exactly as a new user types it."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

#: The leaderboard's four components.
COMPONENTS = (
    "cosine_similarity_all", "top_10_cross_scanner", "top_10_cross_staining",
    "top_10_cross_scanner_cross_staining",
)  # fmt: skip


def _assert_models_separate(board: pl.DataFrame) -> None:
    """The demo teaches what the benchmark distinguishes: its shifts are strong enough that
    top-10 retrieval fails for some model across scanners and for some across stainings,
    the three models get three ranks, the last is significantly worse than the first (another
    group), and on some component two models' 95% intervals do not even overlap."""
    assert board.height == 3 and sorted(board["rank"].to_list()) == [1, 2, 3]
    assert board["top_10_cross_scanner"].min() < 0.95  # type: ignore[operator]
    assert board["top_10_cross_staining"].min() < 0.95  # type: ignore[operator]
    ranked = board.sort("rank")
    assert ranked["group"][0] != ranked["group"][2]

    def disjoint_pairs(c: str) -> int:
        spans = list(zip(board[f"{c}_ci_low"], board[f"{c}_ci_high"], strict=True))
        return sum(a[1] < b[0] or b[1] < a[0] for a, b in itertools.combinations(spans, 2))

    assert sum(disjoint_pairs(c) for c in COMPONENTS) >= 1, board.select("model", *COMPONENTS)


def _numbers(table: str) -> list[list[float]]:
    rows = [line.split("|")[2:-1] for line in table.splitlines()[2:]]
    return [[float(cell) for cell in row] for row in rows]


def _assert_why_doc_matches(analysis: Path) -> None:
    """docs/why.md's demo table is what this demo gives (regenerate: docs/why_numbers.py),
    to within the last printed digit (other CPUs may round the other way)."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    spec = importlib.util.spec_from_file_location("why_numbers", docs / "why_numbers.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    documented = script.block((docs / "why.md").read_text(encoding="utf-8"), "demo")
    measured = script.demo(analysis)
    assert documented.splitlines()[:2] == measured.splitlines()[:2]
    for want, got in zip(_numbers(documented), _numbers(measured), strict=True):
        assert got == pytest.approx(want, abs=0.0015), "run docs/why_numbers.py --demo-analysis"


def _assert_reading_results_matches(board: pl.DataFrame) -> None:
    """docs/reading-results.md shows this demo's leaderboard (to the last printed digit)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reading-results.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "weights)" in line]
    assert len(rows) == 3
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = board.filter(pl.col("model") == cells[1].split(" ")[0]).row(0, named=True)
        assert int(cells[0]) == row["rank"]
        values = [float(v) for v in cells[2:6]]
        score, lo, hi = (float(v) for v in cells[6].replace("[", "").replace("]", "")
                         .replace(",", "").split())  # fmt: skip
        want = [*(row[c] for c in COMPONENTS), row["leaderboard_metric"],
                row["leaderboard_metric_ci_low"], row["leaderboard_metric_ci_high"]]
        assert [*values, score, lo, hi] == pytest.approx(want, abs=0.0015), line


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
    _assert_models_separate(pl.read_csv(base / "leaderboard.csv"))
    assert "<title>plismbench demo report" in report.read_text(encoding="utf-8")
    run = json.loads((base / "hed-histogram" / "run.json").read_text())
    assert run["n_slides"] == 91 and run["n_pairs"] == 4095
    _assert_why_doc_matches(tmp_path / "out" / "analysis")
    _assert_reading_results_matches(pl.read_csv(base / "leaderboard.csv"))
    assert not (tmp_path / "out" / "data" / "synthetic").exists()  # demo tiles cleaned up

    # a second run finds every stage complete and redoes nothing
    again = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    data = json.loads(again.stdout)
    assert data["demo"] is True and "extract" not in data["timings_s"]
    assert json.loads((base / "hed-histogram" / "run.json").read_text()) == run
