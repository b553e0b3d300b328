"""Licences that forbid what a command does: RudolfV-2 forbids training models that replicate it."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.extractors.registry import get_extractor

runner = CliRunner(env={"COLUMNS": "200"})


def test_distill_from_rudolfv2_without_accepting_its_licence_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for dry in ([], ["--dry-run"]):
        res = runner.invoke(app, ["distill", "--teacher", "rudolfv-2", "--out-dir", str(out),
                                  "--tiles-dir", str(tmp_path), *dry])  # fmt: skip
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and "licence" in res.output
        assert get_extractor("rudolfv-2").licence in res.output and "--accept-licence" in res.output
    assert not out.exists()  # nothing written


def test_accepting_the_licence_is_recorded_in_the_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["distill", "--teacher", "rudolfv-2-s", "--out-dir", str(out),
                              "--accept-licence", "--dry-run"])  # fmt: skip
    assert res.exit_code == 0, res.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["accept_licence"] is True and config["teacher"] == "rudolfv-2-s"


def test_models_shows_the_restriction() -> None:
    res = runner.invoke(app, ["models"])
    row = next(line for line in res.stdout.splitlines() if " rudolfv-2 " in line)
    assert "restricts" in res.stdout and "RudolfV-2" in row
    res = runner.invoke(app, ["models", "--json"])
    import json

    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert "no-replicating-training" in rows["rudolfv-2"]["licence_restrictions"]
    assert rows["genbio-pathfm"]["dtype"] == "fp32" and rows["rudolfv-2"]["pooling_reason"]
