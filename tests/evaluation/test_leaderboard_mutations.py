"""Holes found by mutation testing: component intervals, the order of incomplete models,
the choice of the ranked cohort, and significance groups (Holm, against the leader)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from reference import holm_oracle
from synthetic import pairs_frame, synthetic_metrics, write_evaluation

import plismbench
from plismbench.metrics.catalogue import LEADERBOARD_COMPONENTS, component_label
from plismbench.stats import Bootstrap, design_from_metrics
from plismbench.stats.ranking import load_entry, order_entries


def _set_run(folder: Path, **changes: object) -> None:
    run = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**run, **changes}))


def test_component_intervals_equal_a_direct_bootstrap(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pairs_frame(4, 3)
    base = tmp_path / "m" / "20_tiles"
    for name, level in (("a", 0.7), ("b", 0.5)):
        write_evaluation(base / name, synthetic_metrics(frame, rng, level))
    board = plismbench.leaderboard(tmp_path / "m", write=False, n_boot=100, seed=4)
    for r in board.iter_rows(named=True):
        metrics = pl.read_parquet(base / r["model"] / "metrics.parquet")
        boot = Bootstrap(design_from_metrics(metrics), 100, 4)
        reps = []
        for ptype, metric in LEADERBOARD_COMPONENTS:
            label = component_label(ptype, metric)
            values = metrics[metric].to_numpy().astype(np.float64)
            median = float(np.median(values[boot.design.mask(ptype)]))
            reps.append(boot.median(values, ptype))
            bounds = (-1.0, 1.0) if metric == "cosine_similarity" else (0.0, 1.0)
            lo, hi = boot.ci(median, reps[-1], bounds=bounds)
            assert lo < hi
            assert (r[f"{label}_ci_low"], r[f"{label}_ci_high"]) == pytest.approx((lo, hi)), label
        # the mean of a cosine in [-1, 1] and three accuracies in [0, 1]
        score_ci = boot.ci(r["leaderboard_metric"], np.mean(reps, axis=0), bounds=(-0.25, 1.0))
        assert (r["leaderboard_metric_ci_low"], r["leaderboard_metric_ci_high"]) == pytest.approx(
            score_ci
        )


def test_incomplete_models_order_nan_last(tmp_path: Path) -> None:
    """Same slides: two complete models, one partial (finite score), one without
    cross-staining pairs (NaN score). NaN ranks after every number."""
    rng = np.random.default_rng(0)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    write_evaluation(base / "good", synthetic_metrics(frame, rng, 0.6))
    write_evaluation(base / "bad", synthetic_metrics(frame, rng, 0.4))
    write_evaluation(base / "partial", synthetic_metrics(frame, rng, 0.9), complete=False)
    gap = synthetic_metrics(frame.filter(pl.col("pair_type") != "cross-staining"), rng, 0.95)
    write_evaluation(base / "gap", gap)
    board = plismbench.leaderboard(tmp_path / "m", write=False, n_boot=50)
    assert board["model"].to_list() == ["good", "bad", "partial", "gap"]
    assert board["status"].to_list() == ["ranked", "ranked", "incomplete", "incomplete"]
    assert np.isnan(board["leaderboard_metric"][3])


def test_ranked_cohort_is_the_one_with_most_full_complete_models(tmp_path: Path) -> None:
    """Two partial-store runs on one tile subset against one full, complete run on another:
    the full run is ranked, the partial ones are listed apart."""
    rng = np.random.default_rng(1)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    for name in ("p1", "p2"):
        write_evaluation(base / name, synthetic_metrics(frame, rng, 0.8), complete=False)
    write_evaluation(base / "full", synthetic_metrics(frame, rng, 0.3), tile_subset="other")
    board = plismbench.leaderboard(tmp_path / "m", write=False, n_boot=0)
    assert board["model"][0] == "full" and board["status"][0] == "ranked"
    assert set(board["status"][1:]) == {"separate"}


def _leader_groups(names: list[str], p: dict[tuple[str, str], float]) -> list[int]:
    group, leader, out = 1, names[0], []
    for n in names:
        if n != leader and p[(leader, n)] < 0.05:
            group, leader = group + 1, n
        out.append(group)
    return out


@pytest.mark.parametrize(("seed", "step"), [(0, 0.04), (5, 0.02)])
def test_groups_are_holm_tests_against_the_group_leader(
    tmp_path: Path, seed: int, step: float
) -> None:
    rng = np.random.default_rng(seed)
    frame = pairs_frame(4, 3)
    base = tmp_path / "20_tiles"
    for i, name in enumerate("abcd"):
        write_evaluation(base / name, synthetic_metrics(frame, rng, 0.6 - step * i, unit_sd=0.02))
    entries = order_entries([load_entry(base / n) for n in "abcd"], n_boot=200)
    ranked = [e for e in entries if e.status == "ranked"]
    names = [e.name for e in ranked]
    pairs = list(itertools.combinations(ranked, 2))
    raw = np.array(
        [a.boot.p_value(a.score - b.score, a.replicates - b.replicates) for a, b in pairs]  # type: ignore[union-attr,operator]
    )
    keys = [(a.name, b.name) for a, b in pairs]
    adjusted = dict(zip(keys, holm_oracle(raw), strict=True))
    want = _leader_groups(names, adjusted)
    assert [e.group for e in ranked] == want
    # The data tell the alternatives apart: raw p-values (seed 0), or each model tested
    # against the previous one instead of its group's leader (seed 5).
    unadjusted = _leader_groups(names, dict(zip(keys, raw, strict=True)))
    chained = [1]
    for prev, e in itertools.pairwise(names):
        chained.append(chained[-1] + (adjusted[(prev, e)] < 0.05))
    assert want != (unadjusted if seed == 0 else chained), (names, raw, want)


def test_an_all_partial_cohort_ranks_but_is_not_complete(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    for name, level in (("a", 0.7), ("b", 0.4)):
        write_evaluation(base / name, synthetic_metrics(frame, rng, level), complete=False)
    board = plismbench.leaderboard(tmp_path / "m", n_boot=30)
    assert board["status"].to_list() == ["ranked", "ranked"]
    assert board["complete"].to_list() == [False, False]
    r = board.row(0, named=True)
    lo, hi = r["leaderboard_metric_ci_low"], r["leaderboard_metric_ci_high"]
    assert lo < r["leaderboard_metric"] < hi
    md = (base / "leaderboard.md").read_text()
    assert f"{r['leaderboard_metric']:.3f} [{lo:.3f}, {hi:.3f}]" in md


def test_no_intervals_no_groups(tmp_path: Path) -> None:
    """n_boot=0 tests nothing: no model may be put in a group of its own (it was 1, 2, 3
    for three draws of one model)."""
    rng = np.random.default_rng(0)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    for name in "abc":
        write_evaluation(base / name, synthetic_metrics(frame, rng, 0.5))
    board = plismbench.leaderboard(tmp_path / "m", write=False, n_boot=0)
    assert board["group"].to_list() == [None, None, None]
    assert board["status"].to_list() == ["ranked"] * 3
