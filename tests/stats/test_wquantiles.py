"""The fast weighted quantiles against their definitions, bit for bit.

Oracles: ``np.quantile`` of the values repeated by each row's multiplicities (to 1e-12:
its interpolation rounds differently), and, bit for bit, the
straightforward implementation the fast one replaced (every column compared with every
target; scipy.stats quantiles) kept here as :func:`reference_weighted_quantiles` and
:func:`reference_results_ci`, so results.csv's intervals are checked to stay identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic import pairs_frame, synthetic_metrics

from plismbench.metrics.aggregate import metric_names, pair_type_order
from plismbench.stats import Bootstrap, design_from_metrics, results_ci, weighted_quantiles
from plismbench.stats.bootstrap import _jackknife_var, percentile_ci
from plismbench.stats.bounds import metric_bounds
from plismbench.stats.summary import TAIL_METRICS
from plismbench.stats.wquantiles import accumulator

QS = [0.0, 0.025, 0.25, 0.5, 0.75, 0.975, 1.0]


def reference_weighted_quantiles(
    values: np.ndarray, weights: np.ndarray, qs: list[float]
) -> np.ndarray:
    """The definition the fast path replaced: int64 sums, every column against every target."""
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    cum = np.cumsum(weights[:, order].astype(np.int64), axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(weights), dtype=np.int64)
    out = np.full((len(weights), len(qs)), np.nan)
    ok = total > 0
    cum, total = cum[ok], total[ok]
    for j, q in enumerate(qs):
        h = q * (total - 1)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, total - 1)
        v_lo = v[(cum <= lo[:, None]).sum(axis=1)]
        v_hi = v[(cum <= hi[:, None]).sum(axis=1)]
        out[ok, j] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


def reference_ci(
    boot: Bootstrap, estimate: float, reps: np.ndarray, level: float,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[float, float]:
    """Bootstrap.ci as first written, with scipy.stats quantiles, then kept in ``bounds``."""
    from scipy import stats

    if not np.isfinite(estimate):
        return np.nan, np.nan
    lo, hi = percentile_ci(boot.boot(reps), level)
    if not np.isfinite(lo):
        return lo, hi
    s, c = boot.n_jack
    var_s = _jackknife_var(reps[boot.n_boot : boot.n_boot + s])
    var_c = _jackknife_var(reps[boot.n_boot + s :])
    var, sd, f = var_s + var_c, float(np.nanstd(boot.boot(reps))), 1.0
    if not boot.naive and var > 0 and sd > 0:
        denom = (var_s**2 / (s - 1) if s > 1 else 0.0) + (var_c**2 / (c - 1) if c > 1 else 0.0)
        df = var**2 / denom if denom > 0 else 1.0
        alpha = (1.0 - level) / 2.0
        r = float(stats.t.ppf(1 - alpha, df) / stats.norm.ppf(1 - alpha))
        f = max(1.0, r * float(np.sqrt(var)) / sd, r)  # t_df x jackknife SE, at least t/z
    lo = min(estimate, estimate + f * (lo - estimate))  # always reaches the estimate
    hi = max(estimate, estimate + f * (hi - estimate))
    return max(lo, bounds[0]), min(hi, bounds[1])


def reference_results_ci(metrics: pl.DataFrame, names: list[str], **kw: object) -> pl.DataFrame:
    """results_ci as first written: one masked quantile call per (pair type, metric)."""
    level = float(kw.pop("level", 0.95))  # type: ignore[arg-type]
    boot = Bootstrap(design_from_metrics(metrics), **kw)  # type: ignore[arg-type]
    w = boot.weights.astype(np.int64)
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        for name in names:
            values = metrics[name].to_numpy().astype(np.float64)
            mask = boot.design.mask(ptype) & np.isfinite(values)
            sub = values[mask]
            defined = mask.sum() == boot.design.mask(ptype).sum() and sub.size
            med = float(np.median(sub)) if defined else np.nan  # a NaN or inf: undefined
            reps = reference_weighted_quantiles(sub, w[:, mask], [0.5])
            m_lo, m_hi = reference_ci(boot, med, reps[:, 0], level, metric_bounds(name))
            # worst 10%: repeat, sort, average the lowest tenth (highest for median rank)
            sign = -1.0 if name == "median_rank" else 1.0
            worst = sign * tail_brute(sign * sub, np.ones(sub.size, int)) if defined else np.nan
            t_reps = np.array([sign * tail_brute(sign * sub, row) for row in w[:, mask]])
            boot_part = t_reps[: boot.n_boot]
            bias = float(np.mean(boot_part[np.isfinite(boot_part)])) - worst
            t_lo, t_hi = reference_ci(boot, worst - bias, t_reps - 2 * bias, level,
                                      metric_bounds(name))  # fmt: skip
            tail = name in TAIL_METRICS  # the others' tail columns are empty
            rows.append({"pair_type": ptype, "metric": name, "median": med,
                         "median_ci_low": m_lo, "median_ci_high": m_hi,
                         "worst10_mean": worst if tail else None,
                         "worst10_ci_low": min(t_lo, worst) if tail else None,
                         "worst10_ci_high": max(t_hi, worst) if tail else None})  # fmt: skip
    return pl.DataFrame(rows)


def tail_brute(values: np.ndarray, row: np.ndarray, q: float = 0.1) -> float:
    """Mean of the lowest ``q`` of ``values`` repeated by ``row`` (the boundary one in part)."""
    rep = np.sort(np.repeat(values, row))
    if rep.size == 0:
        return float("nan")
    k = q * rep.size
    full = int(np.floor(k))
    return float((rep[:full].sum() + (k - full) * rep[min(full, rep.size - 1)]) / k)


def assert_same_bits(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Medians bit for bit; the worst-10% means (sums in another order) to 1e-9."""
    assert got.columns == want.columns and got.height == want.height
    for c in got.columns:
        if c.startswith("worst10"):
            a, b = got[c].to_numpy(), want[c].to_numpy()
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=c)
            continue
        a, b = got[c].to_numpy(), want[c].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64), err_msg=c)
        else:
            assert (a == b).all(), c


def tied_metrics(n_stainings: int, n_scanners: int, seed: int) -> tuple[pl.DataFrame, list[str]]:
    """Synthetic metrics with accuracies on a grid of 1/16 (ties) and a few NaN / inf."""
    names = metric_names((1, 3, 5, 10))
    frame = pairs_frame(n_stainings, n_scanners)
    metrics = synthetic_metrics(frame, np.random.default_rng(seed), 0.8, top_k=(1, 3, 5, 10))
    metrics = metrics.with_columns((pl.col(c) * 16).round() / 16 for c in names[1:5])
    cos = metrics["cosine_similarity"].to_numpy().copy()
    cos[[1, 7, len(cos) - 2]] = [np.nan, np.inf, np.nan]
    return metrics.with_columns(cosine_similarity=pl.Series(cos)), names


def test_weighted_quantiles_equal_np_quantile_of_repeated_values() -> None:
    """Ties, zero rows, zero columns, one value, no value: against np.repeat + np.quantile."""
    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(0, 40)) if trial else 0
        values = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        weights = rng.integers(0, int(rng.integers(1, 6)), size=(int(rng.integers(1, 25)), n))
        if n:
            weights[rng.integers(0, len(weights))] = 0
            weights[:, rng.integers(0, n)] = 0
        got = weighted_quantiles(values, weights, QS)
        np.testing.assert_array_equal(got, reference_weighted_quantiles(values, weights, QS))
        for row, w in zip(got, weights, strict=True):
            if w.sum() == 0:
                assert np.isnan(row).all()
            else:
                want = np.quantile(np.repeat(values, w), QS)  # its lerp may differ by 1 ulp
                np.testing.assert_allclose(row, want, rtol=0, atol=1e-12)


def test_large_totals_accumulate_in_int64() -> None:
    values = np.array([3.0, 1.0, 2.0, 1.0])
    weights = np.array([[2**30, 2**30, 5, 0], [1, 2, 3, 4]], dtype=np.int64)
    assert accumulator(weights) is np.int64 and accumulator(weights[1:]) is np.int32
    assert accumulator(np.array([[1, -1]])) is np.int64
    got = weighted_quantiles(values, weights, QS)
    np.testing.assert_array_equal(got, reference_weighted_quantiles(values, weights, QS))
    assert got[0, 3] == 2.0  # the median position 2**30 falls past the 2**30 ones


def test_bootstrap_quantiles_by_type_equal_one_type_at_a_time() -> None:
    """Shared across pair types (and ``all`` merged from them): the same bits as one
    masked call per type, and as np.quantile of the repeated finite values."""
    metrics, names = tied_metrics(5, 3, seed=1)
    boot = Bootstrap(design_from_metrics(metrics), n_boot=80, seed=4)
    assert boot.weights.dtype == np.int32
    for name in names:
        values = metrics[name].to_numpy()
        shared = boot.quantiles_by_type(values, QS)
        assert set(shared) == {*boot.design.pair_type.tolist(), "all"}
        for ptype, got in shared.items():
            np.testing.assert_array_equal(got, boot.quantiles(values, ptype, QS))
            mask = boot.design.mask(ptype) & np.isfinite(values)
            for b in (0, 17, len(boot.weights) - 1):
                w = boot.weights[b, mask]
                want = np.quantile(np.repeat(values[mask], w), QS) if w.sum() else np.nan
                np.testing.assert_allclose(got[b], np.broadcast_to(want, got[b].shape), atol=1e-12)


def test_a_pair_type_without_finite_values_gives_nan() -> None:
    metrics, _ = tied_metrics(3, 3, seed=2)
    values = metrics["cosine_similarity"].to_numpy().copy()
    values[metrics["pair_type"].to_numpy() == "cross-staining"] = np.nan
    boot = Bootstrap(design_from_metrics(metrics), n_boot=30)
    shared = boot.quantiles_by_type(values, [0.5])
    assert np.isnan(shared["cross-staining"]).all()
    np.testing.assert_array_equal(shared["all"], boot.quantiles(values, "all", [0.5]))


@pytest.mark.parametrize(("shape", "options"), [
    ((13, 7), {"n_boot": 150, "seed": 0}),
    ((6, 4), {"n_boot": 200, "seed": 3, "level": 0.9}),
    ((4, 3), {"n_boot": 100, "naive": True}),
])  # fmt: skip
def test_results_ci_is_bit_for_bit_the_straightforward_definition(
    shape: tuple[int, int], options: dict[str, object]
) -> None:
    metrics, names = tied_metrics(*shape, seed=5)
    got = results_ci(metrics, names, **options)  # type: ignore[arg-type]
    assert_same_bits(got, reference_results_ci(metrics, names, **options))


def test_widening_quantiles_equal_scipy_stats() -> None:
    from scipy import special, stats

    for df in (1.0, 1.5, 2.0, 2.37, 5.0, 6.999, 12.0, 40.5, 1e4):
        for p in (0.9, 0.95, 0.975, 0.995):
            assert special.stdtrit(df, p) == pytest.approx(stats.t.ppf(p, df), rel=1e-12)
    for p in (0.9, 0.95, 0.975, 0.995):
        assert special.ndtri(p) == pytest.approx(stats.norm.ppf(p), rel=1e-12)


def test_intervals_do_not_import_scipy_stats() -> None:
    """scipy.stats costs about a second to import; the intervals need only scipy.special."""
    code = (
        "import sys, numpy as np\n"
        "from plismbench.stats import results_ci\n"
        "from synthetic import pairs_frame, synthetic_metrics\n"
        "m = synthetic_metrics(pairs_frame(3, 3), np.random.default_rng(0), 0.5)\n"
        "t = results_ci(m, ['cosine_similarity'], n_boot=20)\n"
        "assert t['median_ci_low'].is_finite().all()\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_count_at_most_equals_searchsorted() -> None:
    from plismbench.stats.wquantiles import count_at_most

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 3, 7, 8, 9, 100):
        cum = np.cumsum(rng.integers(0, 3, size=(5, n)), axis=1)
        tgt = rng.integers(-1, int(cum.max(initial=0)) + 2, size=(4, 5))
        rows = np.broadcast_to(np.arange(5), tgt.shape)
        got = count_at_most(lambda idx: cum[rows, idx], n, tgt)  # noqa: B023
        want = [[np.searchsorted(cum[r], x, side="right") for r, x in zip(rw, tw, strict=True)]
                for rw, tw in zip(rows, tgt, strict=True)]  # fmt: skip
        np.testing.assert_array_equal(got, np.array(want).reshape(tgt.shape))


def test_reused_buffers_never_alter_earlier_results() -> None:
    metrics, names = tied_metrics(4, 3, seed=6)
    boot = Bootstrap(design_from_metrics(metrics), n_boot=40)
    first = boot.quantiles_by_type(metrics[names[0]].to_numpy(), QS)
    single = boot.quantiles(metrics[names[0]].to_numpy(), "all", QS)
    kept = {k: v.copy() for k, v in first.items()}, single.copy()
    boot.quantiles_by_type(metrics[names[1]].to_numpy(), QS)
    boot.quantiles(metrics[names[2]].to_numpy(), "cross-staining", QS)
    for k, v in first.items():
        np.testing.assert_array_equal(v, kept[0][k])
    np.testing.assert_array_equal(single, kept[1])


def test_int64_sums_when_int32_could_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound check picks int64 sums (forced here): the same bits as with int32."""
    import plismbench.stats.bootstrap as bootstrap

    metrics, names = tied_metrics(4, 3, seed=7)
    want = results_ci(metrics, names, n_boot=60)
    monkeypatch.setattr(bootstrap, "INT32_MAX", 10)
    boot = Bootstrap(design_from_metrics(metrics), n_boot=60)
    assert boot._acc is np.int64 and boot.weights.dtype == np.int64
    assert_same_bits(results_ci(metrics, names, n_boot=60), want)
