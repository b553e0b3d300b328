"""The published reference scores: shipped as data, rendered beside a run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from synthetic import pairs_frame, synthetic_metrics, write_evaluation
from typer.testing import CliRunner

import plismbench
from plismbench.cli import app
from plismbench.extractors.registry import get_extractor
from plismbench.stats.published import beside_published, published_source, published_table


def test_published_table_is_the_readme_with_genbio_pathfm_at_2() -> None:
    src = published_source()
    assert src["n_tiles"] == 8139 and "owkin/plism-benchmark" in src["source"]
    assert src["upstream_commit"]["15_rows"].startswith("b4f32b7") and src["read_on"]
    table = published_table()
    assert table.height == 16 and table["rank"].to_list() == list(range(1, 17))
    rows = {r["model"]: r for r in table.iter_rows(named=True)}
    genbio = rows["genbio-pathfm"]
    assert genbio["rank"] == 2 and genbio["published_name"] == "GenBio-PathFM"
    assert [genbio[c] for c in table.columns[3:]] == [0.768, 0.709, 0.408, 0.203, 0.522]
    assert rows["conch"]["rank"] == 3 and rows["hibou-l"]["rank"] == 16
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
    assert "Published leaderboard (2026-04, 8,139 tiles)" in res.output
    assert "this run: h0_mini" in res.output and "H-Optimus-0" in res.output
    assert f"({row['leaderboard_metric_diff']:+.3f})" in res.output


def test_every_published_row_is_printed_including_names_with_spaces(tmp_path: Path) -> None:
    """16 rows, GenBio-PathFM #2 with 0.522; runs named like 'Phikon v2' keep their row."""
    rng = np.random.default_rng(1)
    base = tmp_path / "m" / "8139_tiles"
    for folder in ("Phikon v2", "Hibou Large", "h0_mini"):
        write_evaluation(base / folder, synthetic_metrics(pairs_frame(3, 3), rng, 0.5))
    res = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["leaderboard", "--metrics-dir", str(tmp_path / "m"), "--published"]
    )
    assert res.exit_code == 0, res.output
    published = [line for line in res.output.splitlines() if re.search(r"│\s+#\d+\s+│", line)]
    assert len(published) == 16
    assert re.search(r"#2\s+│\s+GenBio-PathFM.*0\.522", published[1])
    for name in ("Phikon v2", "Hibou Large", "h0_mini"):
        assert f"this run: {name}" in res.output, name
