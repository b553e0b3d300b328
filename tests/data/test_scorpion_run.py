"""``run --dataset scorpion`` end to end on the offline SCORPION-shaped demo."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from plismbench.data.datasets import dataset_of_units, get_dataset
from plismbench.metrics.catalogue import COMPONENTS, LEADERBOARD_COMPONENTS, dataset_components
from plismbench.pipeline import run


def test_score_components_per_dataset() -> None:
    assert get_dataset("plism").score_components() == LEADERBOARD_COMPONENTS
    assert get_dataset("scorpion").score_components() == (
        ("all", "cosine_similarity"),
        ("cross-scanner", "top_10_accuracy"),
    )
    assert dataset_of_units(["SCORPION_AT2", "SCORPION_P1000"]).name == "scorpion"
    assert dataset_of_units(["GIV_AT2_to_GMH_S60.tif"]).name == "plism"
    assert dataset_of_units(["someone_else"]).name == "plism"
    assert dataset_components(["GIV_AT2_to_GMH_S60.tif"]) == COMPONENTS
    labels = [c.label for c in dataset_components(["SCORPION_AT2"])]
    assert labels == ["cosine_similarity_all", "top_10_cross_scanner"]


def test_run_scorpion_synthetic(tmp_path: Path) -> None:
    result = run(
        ["hed-histogram", "rgb-histogram"], source="synthetic", dataset="scorpion",
        output_dir=tmp_path, device="cpu", progress=False, workers=1,
    )  # fmt: skip
    board = result.leaderboard
    assert board.height == 2 and board["status"].to_list() == ["ranked", "ranked"]
    row = board.row(0, named=True)
    # SCORPION's score: mean of the median cosine (all pairs) and median top-10 cross-scanner.
    expected = (row["cosine_similarity_all"] + row["top_10_cross_scanner"]) / 2
    assert math.isclose(row["leaderboard_metric"], expected, rel_tol=1e-12)
    assert row["leaderboard_metric_ci_low"] <= row["leaderboard_metric"]
    assert row["leaderboard_metric"] <= row["leaderboard_metric_ci_high"]
    assert row["n_slides"] == 5
    metrics = pl.read_csv(tmp_path / "metrics" / "24_tiles" / "hed-histogram" / "metrics.csv")
    assert metrics.height == 10 and set(metrics["pair_type"]) == {"cross-scanner"}
    assert result.report is not None and result.report.is_file()
    assert not (tmp_path / "analysis").exists()  # one factor: no staining x scanner analysis
