"""Intervals in results.csv, and the report's bundle never outliving the outputs it describes."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
from featurestore import plism_like, write_store

from plismbench.evaluation import evaluate as _evaluate
from plismbench.evaluation.intervals import with_intervals
from plismbench.stats.summary import CI_COLUMNS, results_ci

evaluate = functools.partial(_evaluate, allow_missing=True)  # small PLISM sub-grids


def test_results_intervals_are_the_stats_bootstrap(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(5), stainings=("GIV", "GM", "HR"), n=30)
    write_store(tmp_path / "f", "m", slides)
    res = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    names = ["cosine_similarity", "top_1_accuracy"]
    want = results_ci(res.metrics, names)
    got = res.results.filter(pl.col("metric").is_in(names)).select(want.columns)
    assert got.sort("pair_type", "metric").equals(want.sort("pair_type", "metric"))


def test_no_resamplable_design_leaves_empty_intervals() -> None:
    results = pl.DataFrame({"pair_type": ["all"], "metric": ["cosine_similarity"], "median": [1.0]})
    metrics = pl.DataFrame({"pair_type": ["all"], "cosine_similarity": [1.0]})  # no design columns
    out = with_intervals(results, metrics, ["cosine_similarity"])
    assert set(CI_COLUMNS) <= set(out.columns)
    assert out.select(CI_COLUMNS).null_count().row(0) == (1, 1)


def test_stale_results_bundle_is_removed_when_outputs_change(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    write_store(tmp_path / "f", "m", plism_like(rng, n=20))
    res = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    bundle = res.output_dir / "results.json"
    bundle.write_text("{}")
    evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)  # unchanged: reused
    assert bundle.is_file()
    write_store(tmp_path / "f", "m", plism_like(rng, n=20))  # new features
    evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    assert not bundle.exists()
