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
    assert (table["p_bootstrap_adj"] >= table["p_bootstrap"]).all()
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


def test_interval_and_test_are_one_decision_and_contain_the_estimate(tmp_path: Path) -> None:
    """Every row: the interval excludes 0 exactly when the bootstrap p < 0.05 (a test by
    inversion), and it contains its own estimate; issue 19 found 9 of 540 rows disagree."""
    root = _models(tmp_path)
    table = compare(root, ["better", "base", "redraw"], n_boot=300)
    for r in table.iter_rows(named=True):
        excludes = not (r["ci_low"] <= 0.0 <= r["ci_high"])
        assert excludes == (r["p_bootstrap"] < 0.05), r
        assert r["ci_low"] <= r["difference"] <= r["ci_high"], r
        assert 0.0 <= r["p_a_better"] <= 1.0


def test_p_value_inverts_the_interval_at_every_level() -> None:
    from plismbench.stats.bootstrap import Bootstrap
    from plismbench.store.design import design_from_metrics

    frame = pairs_frame(6, 4)
    boot = Bootstrap(design_from_metrics(frame), n_boot=300, seed=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = additive_values(frame, rng), additive_values(frame, rng)
        a += rng.normal(0, 0.5)
        diff = float(np.median(a) - np.median(b))
        reps = boot.median(a, "all") - boot.median(b, "all")
        p = boot.p_value(diff, reps)
        for level in (0.5, 0.8, 0.9, 0.95, 0.99):
            lo, hi = boot.ci(diff, reps, level)
            if abs(p - (1 - level)) > 1e-6:
                assert (not lo <= 0.0 <= hi) == (p < 1 - level), (level, p, lo, hi)


def test_bh_matches_scipy_and_correction_option(tmp_path: Path) -> None:
    from scipy.stats import false_discovery_control

    from plismbench.stats.multitest import adjust, bh

    p = np.random.default_rng(3).uniform(0, 0.2, 17)
    np.testing.assert_allclose(bh(p), false_discovery_control(p), rtol=1e-12)
    got = bh(np.array([np.nan, 0.01, 0.04]))
    assert np.isnan(got[0]) and got[1:] == pytest.approx(false_discovery_control([0.01, 0.04]))
    with pytest.raises(InputError, match="--correction bonferroni"):
        adjust(np.array([0.1]), "bonferroni")
    root = _models(tmp_path)
    table = compare(root, ["better", "base", "redraw"], n_boot=200, correction="bh")
    assert set(table["correction"]) == {"bh"}
    res = CliRunner().invoke(app, ["compare", "better", "base", "--metrics-dir", str(root),
                                   "--n-boot", "50", "--correction", "bh"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(pl.read_csv(root / "20_tiles" / "compare.csv")["correction"]) == {"bh"}
    res = CliRunner().invoke(app, ["compare", "better", "base", "--metrics-dir", str(root),
                                   "--correction", "nope"])  # fmt: skip
    assert res.exit_code == 2


def test_an_undefined_value_stays_undefined(tmp_path: Path) -> None:
    """A NaN among a model's pairs: its medians, differences, intervals and p-values are
    NaN (printed n/a), as the leaderboard calls its score undefined; issue 19: compare
    gave a finite 0.595 and printed +nan [+nan, +nan]."""
    root = _models(tmp_path)
    folder = root / "20_tiles" / "base"
    metrics = pl.read_parquet(folder / "metrics.parquet")
    top = metrics["top_10_accuracy"].to_numpy().copy()
    top[(metrics["pair_type"] == "cross-staining").to_numpy().nonzero()[0][0]] = np.nan
    write_evaluation(folder, metrics.with_columns(top_10_accuracy=pl.Series(top)), top_k=(10,))
    table = compare(root, ["better", "base"], n_boot=50)
    top10 = pl.col("metric") == "top_10_accuracy"
    nan_rows = table.filter(
        top10 & pl.col("pair_type").is_in(["cross-staining", "all"])
        | (pl.col("metric") == "leaderboard_metric")
    )
    assert nan_rows.height == 5  # the medians and the worst-10% means
    for r in nan_rows.iter_rows(named=True):
        assert np.isnan(r["difference"]) and np.isnan(r["ci_low"]) and np.isnan(r["p_bootstrap"])
        assert r["significant"] is None
    ok = table.filter(top10 & (pl.col("pair_type") == "cross-scanner"))
    assert np.isfinite(ok["difference"][0])
    res = CliRunner().invoke(app, ["compare", "better", "base", "--metrics-dir", str(root),
                                   "--n-boot", "50"])  # fmt: skip
    assert res.exit_code == 0 and "+nan" not in res.output and "n/a" in res.output


def test_leaderboard_ties_share_a_rank_and_ranks_have_intervals(tmp_path: Path) -> None:
    """Identical scores share rank 1 (issue 19: ranks 1, 2, 3 by name); every ranked
    model has a rank interval containing its rank, and P(beats the next) in [0, 1]."""
    import plismbench

    root = _models(tmp_path)
    base = root / "20_tiles"
    write_evaluation(base / "twin", pl.read_parquet(base / "better" / "metrics.parquet"),
                     top_k=(10,))  # fmt: skip
    board = plismbench.leaderboard(root, write=False, n_boot=200)
    ranks = dict(zip(board["model"], board["rank"], strict=True))
    assert ranks["better"] == ranks["twin"] == 1 and sorted(ranks.values()) == [1, 1, 3, 4]
    for r in board.iter_rows(named=True):
        assert r["rank_ci_low"] <= r["rank"] <= r["rank_ci_high"]
    assert board.filter(pl.col("model") == "better")["p_beats_next"][0] == pytest.approx(0.5)
