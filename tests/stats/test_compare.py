"""compare: a planted difference is significant, two draws of one model are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic import additive_values, pairs_frame, write_evaluation
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.errors import InputError
from plismbench.stats.compare import compare, leaderboard_rows


def _models(tmp_path: Path) -> Path:
    """``base`` and ``redraw``: same staining/scanner effects, fresh pair noise (one model
    drawn twice); ``better``: ``base`` + 0.08 on every metric (a planted difference)."""
    rng = np.random.default_rng(5)
    frame = pairs_frame(8, 5)
    shared = {m: additive_values(frame, rng, unit_sd=0.03, noise=0.0) for m in ("c", "t")}
    out = tmp_path / "m" / "20_tiles"

    def draw(shift: float) -> pl.DataFrame:
        cols = {
            "cosine_similarity": 0.6 + shared["c"] + rng.normal(0, 0.01, frame.height) + shift,
            "top_10_accuracy": 0.5 + shared["t"] + rng.normal(0, 0.01, frame.height) + shift,
        }
        cols["mrr"], cols["median_rank"] = cols["top_10_accuracy"], 2 - cols["cosine_similarity"]
        return frame.with_columns(**{k: pl.Series(v) for k, v in cols.items()})

    write_evaluation(out / "base", draw(0.0), top_k=(10,))
    write_evaluation(out / "redraw", draw(0.0), top_k=(10,))
    write_evaluation(out / "better", draw(0.08), top_k=(10,))
    return tmp_path / "m"


def test_planted_difference_is_significant_and_redraw_is_not(tmp_path: Path) -> None:
    root = _models(tmp_path)
    table = compare(root, ["better", "base", "redraw"], n_boot=400)
    assert set(table["pair_type"]) == {
        "cross-scanner", "cross-staining", "cross-scanner-cross-staining", "all", "score"
    }  # fmt: skip
    planted = table.filter((pl.col("model_a") == "better") & (pl.col("model_b") == "base"))
    assert planted["significant"].all()
    assert ((planted["ci_low"] > 0) | (planted["ci_high"] < 0)).all()  # median rank: lower
    assert (planted["difference"].abs() > 0.06).all()
    same = table.filter((pl.col("model_a") == "base") & (pl.col("model_b") == "redraw"))
    assert not same["significant"].any()
    assert ((same["ci_low"] < 0) & (same["ci_high"] > 0)).all()
    assert (table["p_bootstrap_holm"] >= table["p_bootstrap"]).all()
    score = planted.filter(pl.col("metric") == "leaderboard_metric").row(0, named=True)
    assert score["difference"] == pytest.approx(0.08, abs=0.01)
    assert leaderboard_rows(table).height == 3 * 5


def test_compare_refuses_other_slide_sets(tmp_path: Path) -> None:
    root = _models(tmp_path)
    small = pairs_frame(2, 2).with_columns(
        cosine_similarity=pl.lit(0.5), top_10_accuracy=pl.lit(0.5), mrr=pl.lit(0.5),
        median_rank=pl.lit(1.0),
    )  # fmt: skip
    write_evaluation(root / "20_tiles" / "small", small, top_k=(10,))
    with pytest.raises(InputError, match="different slides"):
        compare(root, ["base", "small"])
    with pytest.raises(InputError, match="at least two"):
        compare(root, ["base"])
    with pytest.raises(InputError, match="no finished evaluation"):
        compare(root, ["base", "nope"])


def test_cli(tmp_path: Path) -> None:
    root = _models(tmp_path)
    out = tmp_path / "cmp.csv"
    runner = CliRunner(env={"COLUMNS": "220"})
    args = ["compare", "better", "base", "--metrics-dir", str(root), "--out", str(out)]
    res = runner.invoke(app, [*args, "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "better" in res.output and "Wilcoxon" in res.output and out.is_file()
    assert pl.read_csv(out).height > 5
    res = runner.invoke(app, ["compare", "base", "--metrics-dir", str(root)])
    assert res.exit_code == 2 and "at least two" in res.output


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    from plismbench.stats.multitest import holm

    p = np.random.default_rng(0).random(12) ** 3
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    assert np.isnan(holm(np.array([np.nan, 0.01]))[0]) and holm(np.array([np.nan, 0.01]))[1] == 0.01
