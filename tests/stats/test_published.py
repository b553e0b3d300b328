"""The published reference scores: shipped as data, rendered beside a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import pairs_frame, synthetic_metrics, write_evaluation
from typer.testing import CliRunner

import plismbench
from plismbench.cli import app
from plismbench.extractors.registry import get_extractor
from plismbench.stats.published import beside_published, published_source, published_table


def test_published_table_is_the_readme_of_2025_03_03() -> None:
    src = published_source()
    assert src["date"] == "2025-03-03" and src["n_tiles"] == 8139 and "owkin/plism-benchmark" in (
        src["source"]
    )
    table = published_table()
    assert table.height == 15 and table["rank"].to_list() == list(range(1, 16))
    rows = {r["model"]: r for r in table.iter_rows(named=True)}
    h0 = rows["h0-mini"]
    assert (h0["cosine_similarity_all"], h0["top_10_cross_scanner"]) == (0.800, 0.864)
    assert (h0["top_10_cross_staining"], h0["top_10_cross_scanner_cross_staining"]) == (
        0.318, 0.183,
    )  # fmt: skip
    assert h0["leaderboard_metric"] == 0.541
    assert rows["h-optimus-0"]["leaderboard_metric"] == 0.480
    for r in rows.values():  # the published score is the rounded mean of the rounded medians
        parts = [r[c] for c in table.columns[3:7]]
        assert round(float(np.mean(parts)), 3) == pytest.approx(r["leaderboard_metric"])
        get_extractor(r["model"])  # every published model is in our registry


def test_run_beside_published_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = tmp_path / "m" / "8139_tiles"
    write_evaluation(base / "h0_mini", synthetic_metrics(pairs_frame(3, 3), rng, 0.6))
    write_evaluation(base / "mine", synthetic_metrics(pairs_frame(3, 3), rng, 0.5))
    board = plismbench.leaderboard(tmp_path / "m", write=False)
    side = beside_published(board)
    assert side["model"].to_list() == ["h0_mini"]  # the reference's folder name matches
    row = side.row(0, named=True)
    assert row["leaderboard_metric_published"] == 0.541
    assert row["leaderboard_metric_diff"] == pytest.approx(row["leaderboard_metric"] - 0.541)
    res = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["leaderboard", "--metrics-dir", str(tmp_path / "m"), "--published"]
    )
    assert res.exit_code == 0, res.output
    assert "Published leaderboard (2025-03-03, 8,139 tiles)" in res.output
    assert "this run: h0_mini" in res.output and "H-Optimus-0" in res.output
    assert f"({row['leaderboard_metric_diff']:+.3f})" in res.output
