"""Holes found by mutation testing: the bootstrap p-value and widening, and compare's
Wilcoxon, Holm groups, significance column and row alignment, against oracles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from reference import holm_oracle
from synthetic import pairs_frame, synthetic_metrics, write_evaluation

from plismbench.stats import Bootstrap, design_from_metrics
from plismbench.stats.compare import compare
from plismbench.store.design import Design


def test_p_value_is_the_inverted_interval() -> None:
    """Naive bootstrap (no widening): p is the smallest 1 - level whose percentile interval
    excludes 0, found on a fine grid of levels; never below 1 / (1 + B)."""
    design = design_from_metrics(pairs_frame(3, 2))
    reps = np.array([-0.2, -0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, np.nan])
    boot = Bootstrap(design, n_boot=len(reps), naive=True)
    p = boot.p_value(0.2, reps)
    finite = reps[np.isfinite(reps)]
    grid = np.linspace(1e-4, 1, 20001)
    excl = [np.quantile(finite, a / 2) > 0 or np.quantile(finite, 1 - a / 2) < 0 for a in grid]
    assert p == pytest.approx(grid[int(np.argmax(excl))], abs=1e-4)
    assert boot.p_value(0.2, np.array([0.2] * 9 + [np.nan])) == pytest.approx(1 / 10)


def _jackknife_reps(boot: Bootstrap, jack_sd: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_jack = sum(boot.n_jack)
    return np.concatenate([rng.normal(0.1, 0.05, boot.n_boot), rng.normal(0.1, jack_sd, n_jack)])


def test_widening_stretches_the_p_value_and_never_shrinks() -> None:
    from scipy.special import ndtri, stdtrit

    design = design_from_metrics(pairs_frame(4, 3))
    boot = Bootstrap(design, n_boot=50)
    wide = _jackknife_reps(boot, 0.2)  # jackknife spread far above the bootstrap's
    assert boot.widening(0.1, wide) > 1.5
    naive = Bootstrap(design, n_boot=50, naive=True)
    assert boot.p_value(0.1, wide) > naive.p_value(0.1, wide[: boot.n_boot])
    narrow = _jackknife_reps(boot, 1e-4)  # jackknife far below: only the t/z floor
    parts = boot._jackknife(0.1, narrow)
    assert parts is not None
    t_over_z = float(stdtrit(parts[1], 0.975) / ndtri(0.975))
    assert boot.widening(0.1, narrow) == pytest.approx(t_over_z) and t_over_z >= 1.0
    lo, hi = boot.ci(0.1, narrow)
    q = np.quantile(narrow[: boot.n_boot], [0.025, 0.975])
    assert (lo, hi) == pytest.approx((0.1 + t_over_z * (q[0] - 0.1), 0.1 + t_over_z * (q[1] - 0.1)))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four models on 4 x 3 slides; ``d`` is ``c``'s metrics with rows shuffled and every
    pair written the other way round (slide_b first)."""
    rng = np.random.default_rng(13)
    frame = pairs_frame(4, 3)
    base = tmp_path_factory.mktemp("cmp") / "m" / "20_tiles"
    for name, level in (("a", 0.62), ("b", 0.6), ("c", 0.55)):
        write_evaluation(base / name, synthetic_metrics(frame, rng, level, unit_sd=0.02))
    c = pl.read_parquet(base / "c" / "metrics.parquet")
    swapped = c.rename(
        {f"{k}_{s}": f"{k}_{'b' if s == 'a' else 'a'}" for k in ("slide", "staining", "scanner")
         for s in "ab"}
    ).select(c.columns)  # fmt: skip
    write_evaluation(base / "d", swapped[rng.permutation(c.height)])
    return base.parent


def test_compare_columns_equal_their_definitions(root: Path) -> None:
    from scipy.stats import wilcoxon

    table = compare(root, ["a", "b", "c"], n_boot=100)
    metrics = {m: pl.read_parquet(root / "20_tiles" / m / "metrics.parquet") for m in "abc"}
    rows = table.filter((pl.col("metric") != "leaderboard_metric")
                        & (pl.col("statistic") == "median"))  # fmt: skip
    for r in rows.iter_rows(named=True):
        va, vb = (metrics[m] for m in (r["model_a"], r["model_b"]))
        keep = pl.lit(True) if r["pair_type"] == "all" else pl.col("pair_type") == r["pair_type"]
        d = va.filter(keep)[r["metric"]].to_numpy() - vb.filter(keep)[r["metric"]].to_numpy()
        assert r["n_pairs"] == d.size
        assert r["p_wilcoxon_pairs"] == pytest.approx(wilcoxon(d).pvalue, rel=1e-9)
    # Holm within each (metric, pair type), across the three model pairs; significance
    # is the Holm-corrected bootstrap p below 0.05.
    for _, group in table.group_by("metric", "pair_type", "statistic"):
        assert group.height == 3
        for col in ("p_bootstrap", "p_wilcoxon_pairs"):
            p = group[col].to_numpy()
            if np.isfinite(p).all():
                want = holm_oracle(p)
                np.testing.assert_allclose(group[f"{col}_adj"].to_numpy(), want, rtol=1e-12)
    assert (table["significant"] == (table["p_bootstrap_adj"] < 0.05)).all()
    assert ((table["p_bootstrap"] < 0.05) & (table["p_bootstrap_adj"] >= 0.05)).any()


def test_compare_aligns_pairs_written_in_another_order(root: Path) -> None:
    want = compare(root, ["a", "c"], n_boot=100).drop("model_b")
    got = compare(root, ["a", "d"], n_boot=100).drop("model_b")
    assert got.equals(want)


def test_synthetic_values_do_not_depend_on_the_string_hash_seed() -> None:
    """Seeded synthetic data are the same in every process (they followed set order)."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from synthetic import additive_values, pairs_frame;"
        "print(additive_values(pairs_frame(4, 3), np.random.default_rng(0)).round(12).tolist())"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        tests = Path(__file__).resolve().parents[1]  # where the synthetic fixtures live
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, cwd=tests)  # fmt: skip
        assert run.returncode == 0, run.stderr
        outs.add(run.stdout)
    assert len(outs) == 1


def test_iqr_gets_no_interval() -> None:
    """IQR intervals were dropped (they covered 0.63-0.87 on 13 x 7, issue 19)."""
    from plismbench.stats import results_ci

    frame = pairs_frame(4, 3)
    values = synthetic_metrics(frame, np.random.default_rng(2), 0.5)["cosine_similarity"]
    table = results_ci(frame.with_columns(cosine_similarity=values), ["cosine_similarity"],
                       n_boot=60, seed=3)  # fmt: skip
    assert not any(c.startswith("iqr") for c in table.columns)


def test_fixed_level_is_in_every_breakdown_resample() -> None:
    """A staining's (scanner's) breakdown holds it fixed: each resample keeps its pairs."""
    from plismbench.stats.breakdown import _fixed_weights

    design = design_from_metrics(pairs_frame(4, 3))
    boot = Bootstrap(design, n_boot=100)
    for kind, of in (("staining", design.staining_of), ("scanner", design.scanner_of)):
        for index in range(of.max() + 1):
            w = _fixed_weights(boot, kind, index)[: boot.n_boot]
            within = (of[design.pair_a] == index) & (of[design.pair_b] == index)
            involved = (of[design.pair_a] == index) | (of[design.pair_b] == index)
            assert (w[:, involved].sum(axis=1) > 0).all(), (kind, index)
            # Drawn once: a pair inside the fixed level weighs what the other factor gives.
            full = hierarchical_once(boot, kind, design)
            np.testing.assert_array_equal(w[:, within], full[:, within])


def hierarchical_once(boot: Bootstrap, kind: str, d: Design) -> np.ndarray:
    """Pair weights when only the other factor is resampled (same draws as breakdown)."""
    from plismbench.stats.bootstrap import unit_counts

    rng = np.random.default_rng(boot.seed)
    stain = unit_counts(len(d.stainings), boot.n_boot, rng)
    scan = unit_counts(len(d.scanners), boot.n_boot, rng)
    (stain if kind == "staining" else scan)[:] = 1
    sa, sb = d.staining_of[d.pair_a], d.staining_of[d.pair_b]
    ca, cb = d.scanner_of[d.pair_a], d.scanner_of[d.pair_b]
    # Each distinct unit of a pair counts once.
    w = stain[:, sa] * np.where(sa != sb, stain[:, sb], 1)
    return np.asarray(w * scan[:, ca] * np.where(ca != cb, scan[:, cb], 1))


def test_align_refuses_duplicated_pairs() -> None:
    from plismbench.errors import InputError
    from plismbench.store.design import align

    frame = pairs_frame(3, 2)
    with pytest.raises(InputError, match="not the same slide pairs"):
        align(pl.concat([frame, frame[:1]]), frame)


def test_score_is_undefined_without_top_10(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    frame = pairs_frame(3, 3)
    base = tmp_path / "m" / "20_tiles"
    for name, level in (("x", 0.6), ("y", 0.5)):
        write_evaluation(base / name, synthetic_metrics(frame, rng, level, top_k=(5,)), (5,))
    table = compare(tmp_path / "m", ["x", "y"], n_boot=30)
    score = table.filter(pl.col("metric") == "leaderboard_metric").row(0, named=True)
    assert np.isnan(score["median_a"]) and np.isnan(score["difference"])
