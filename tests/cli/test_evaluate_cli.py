"""``plismbench evaluate`` and ``leaderboard`` through Typer's runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from featurestore import plism_like, write_store
from typer.testing import CliRunner

from plismbench.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


def test_evaluate_then_leaderboard(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_store(tmp_path / "f", "good", plism_like(rng, n=30, noise=0.3))
    write_store(tmp_path / "f", "bad", plism_like(rng, n=30, noise=3.0))
    for model, flag in [("good", "--model"), ("bad", "--extractor")]:
        res = runner.invoke(
            app, ["evaluate", flag, model, "--features-dir", str(tmp_path / "f"),
                  "--metrics-dir", str(tmp_path / "m"), "--quiet", "--workers", "1",
                  "--allow-missing"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "Top-10" in res.output and "cross-staining" in res.output
        assert "30_tiles" in " ".join(res.output.split())
    res = runner.invoke(app, ["leaderboard", "--metrics-dir", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    board = pl.read_csv(tmp_path / "m" / "30_tiles" / "leaderboard.csv")
    assert board["model"].to_list() == ["good", "bad"]
    assert board["rank"].to_list() == [1, 2]
    for model in ("good", "bad"):
        results = pl.read_csv(tmp_path / "m" / "30_tiles" / model / "results.csv")
        med = {(r["pair_type"], r["metric"]): r["median"] for r in results.iter_rows(named=True)}
        row = board.filter(pl.col("model") == model).row(0, named=True)
        want = np.mean(
            [med[("all", "cosine_similarity")], med[("cross-scanner", "top_10_accuracy")],
             med[("cross-staining", "top_10_accuracy")],
             med[("cross-scanner-cross-staining", "top_10_accuracy")]]
        )  # fmt: skip
        assert row["leaderboard_metric"] == pytest.approx(want, rel=1e-12)
    assert (tmp_path / "m" / "30_tiles" / "leaderboard.md").read_text().startswith("# Leaderboard")


def test_leaderboard_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["leaderboard", "--metrics-dir", str(tmp_path / "none")])
    assert res.exit_code != 0 and "metrics directory not found" in res.output
    (tmp_path / "m" / "10_tiles" / "x").mkdir(parents=True)
    (tmp_path / "m" / "20_tiles").mkdir(parents=True)
    res = runner.invoke(app, ["leaderboard", "--metrics-dir", str(tmp_path / "m")])
    assert res.exit_code != 0 and "choose one with --n-tiles" in res.output
    res = runner.invoke(
        app, ["leaderboard", "--metrics-dir", str(tmp_path / "m"), "--n-tiles", "10"]
    )
    assert res.exit_code != 0 and "no finished evaluations" in res.output


def test_console_script_and_module_entry(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "plismbench", "evaluate", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--features-dir" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "plismbench", "evaluate", "--model", "m", "--features-dir",
         str(tmp_path), "--metrics-dir", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0 and "no features for model 'm'" in out.stderr


@pytest.mark.parametrize("damage", ["run.json", "results.csv", "missing"])
def test_leaderboard_damaged_outputs_are_one_line(tmp_path: Path, damage: str) -> None:
    write_store(tmp_path / "f", "m", plism_like(np.random.default_rng(3), n=12))
    res = runner.invoke(app, ["evaluate", "--model", "m", "--features-dir", str(tmp_path / "f"),
                              "--metrics-dir", str(tmp_path / "out"), "--quiet",
                              "--allow-missing"])  # fmt: skip
    assert res.exit_code == 0, res.output
    folder = tmp_path / "out" / "12_tiles" / "m"
    if damage == "missing":
        (folder / "results.csv").unlink()
    else:
        (folder / damage).write_text("{not valid")
    res = runner.invoke(app, ["leaderboard", "--metrics-dir", str(tmp_path / "out")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "unreadable evaluation outputs" in res.output and "12_tiles/m" in res.output
