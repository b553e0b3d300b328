"""Leaderboard trust (issue 13): incomplete models never rank first, incomparable
evaluations are not mixed, and every score has its interval and significance group.

The evaluation folders are written directly (``write_evaluation``), as evaluate writes
them, so these tests do not depend on the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic import pairs_frame, synthetic_metrics, write_evaluation

import plismbench


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    """good (0.8) and bad (0.4) on 3 x 3 slides; a 2-slide model scoring 1.0, one pair type."""
    rng = np.random.default_rng(0)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    write_evaluation(base / "good", synthetic_metrics(frame, rng, 0.8))
    write_evaluation(base / "bad", synthetic_metrics(frame, rng, 0.4))
    two = synthetic_metrics(pairs_frame(1, 2), rng, 1.0, unit_sd=0.0, noise=0.0)
    write_evaluation(base / "two-slides", two)
    return tmp_path / "m"


def _edit_run(folder: Path, **changes: object) -> None:
    run = json.loads((folder / "run.json").read_text())
    run.update(changes)
    (folder / "run.json").write_text(json.dumps(run))


def test_a_two_slide_model_never_ranks_first(metrics: Path) -> None:
    board = plismbench.leaderboard(metrics)
    assert board["model"].to_list() == ["good", "bad", "two-slides"]
    assert board["rank"].to_list() == [1, 2, None]  # a separate model gets no rank number
    last = board.row(2, named=True)
    assert np.isnan(last["leaderboard_metric"]) and last["status"] == "separate"
    assert "other slides (2, 2 shared with the ranked 9)" in last["note"]
    assert "incomplete" in last["note"] and "cross-staining" in last["note"]
    assert board["status"].to_list()[:2] == ["ranked", "ranked"]
    assert board["complete"].to_list() == [True, True, False]
    on_disk = pl.read_csv(metrics / "20_tiles" / "leaderboard.csv")
    assert on_disk["model"].to_list() == board["model"].to_list()


def test_complete_false_ranks_after_complete_models(metrics: Path) -> None:
    _edit_run(metrics / "20_tiles" / "good", complete=False)
    board = plismbench.leaderboard(metrics, write=False)
    assert board["model"].to_list()[:2] == ["bad", "good"]
    good = board.row(1, named=True)
    assert good["status"] == "incomplete" and "complete: false" in good["note"]
    assert good["group"] is None
    # Models all evaluated on the same partial store rank together, marked partial.
    _edit_run(metrics / "20_tiles" / "bad", complete=False)
    board = plismbench.leaderboard(metrics, write=False)
    assert board["model"].to_list()[:2] == ["good", "bad"]
    assert board["status"].to_list()[:2] == ["ranked", "ranked"]
    assert "partial PLISM store: 9 of 91 slides" in board["note"][0]


def test_other_tile_subsets_and_k_lists_are_separate(metrics: Path) -> None:
    _edit_run(metrics / "20_tiles" / "good", tile_subset="reference subset 460", top_k=[10])
    board = plismbench.leaderboard(metrics)
    good = board.filter(pl.col("model") == "good").row(0, named=True)
    assert board["model"][0] == "bad"
    assert good["status"] == "separate" and good["rank"] is None
    assert "another tile subset" in good["note"] and "top-k [10]" in good["note"]
    md = (metrics / "20_tiles" / "leaderboard.md").read_text()
    assert "separate: another tile subset" in md


def test_slide_ids_in_run_json_define_the_cohort(metrics: Path) -> None:
    slides = sorted(set(pairs_frame(3, 3)["slide_a"]) | set(pairs_frame(3, 3)["slide_b"]))
    _edit_run(metrics / "20_tiles" / "good", slide_ids=slides[:-1])
    board = plismbench.leaderboard(metrics, write=False)
    good = board.filter(pl.col("model") == "good").row(0, named=True)
    assert good["status"] == "separate" and "8, 8 shared with the ranked 9" in good["note"]


def test_scores_have_intervals_and_significance_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pairs_frame(5, 4)
    base = tmp_path / "m" / "20_tiles"
    for name, level in (("a", 0.8), ("b", 0.8), ("c", 0.3)):
        write_evaluation(base / name, synthetic_metrics(frame, rng, level, unit_sd=0.02))
    board = plismbench.leaderboard(tmp_path / "m", write=False)
    for r in board.iter_rows(named=True):
        assert r["leaderboard_metric_ci_low"] <= r["leaderboard_metric"]
        assert r["leaderboard_metric"] <= r["leaderboard_metric_ci_high"]
    assert board["group"].to_list() == [1, 1, 2]  # a ~ b, both far above c
    assert board["model"][2] == "c"
