"""results.csv's bootstrap intervals: ``results_ci`` against its first implementation.

    uv run python benchmarks/bench_stats.py              # 91 slides, 4,095 pairs, 7 metrics
    uv run python benchmarks/bench_stats.py --repeat 9 --n-boot 1000

Baseline (measured in the same run, same table, outputs checked bit for bit):
:func:`baseline_results_ci`, the implementation before the fast path: int64 weights,
one masked quantile call per (pair type, metric), each gathering the weights in value
order, summing them cumulatively and comparing every column with every target; the
widening's quantiles from ``scipy.stats``. Also reported: the import time of
``scipy.stats`` (what the baseline imported) and of ``scipy.special`` (what it needs),
each in a fresh interpreter with ``-X importtime``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from plismbench.metrics.aggregate import metric_names, pair_type_order
from plismbench.stats import design_from_metrics, results_ci
from plismbench.stats.bootstrap import (
    Bootstrap,
    _jackknife_var,
    hierarchical_weights,
    jackknife_weights,
    percentile_ci,
)
from plismbench.stats.bounds import metric_bounds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' fixtures
from synthetic import pairs_frame, synthetic_metrics


def metrics_table(seed: int = 0) -> tuple[pl.DataFrame, list[str]]:
    """91 PLISM slides, 4,095 pairs, 7 metric columns (accuracies on a 1/16 grid: ties)."""
    names = metric_names((1, 3, 5, 10))
    frame = pairs_frame(13, 7)
    metrics = synthetic_metrics(frame, np.random.default_rng(seed), 0.8, top_k=(1, 3, 5, 10))
    return metrics.with_columns((pl.col(c) * 16).round() / 16 for c in names[1:5]), names


def baseline_weighted_quantiles(
    values: np.ndarray, weights: np.ndarray, qs: list[float]
) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    cum = np.cumsum(weights[:, order], axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(len(weights), dtype=np.int64)
    out = np.full((len(weights), len(qs)), np.nan)
    ok = total > 0
    if not ok.any():
        return out
    cum, total = cum[ok], total[ok]
    for j, q in enumerate(qs):
        h = q * (total - 1)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, total - 1)
        v_lo = v[(cum <= lo[:, None]).sum(axis=1)]
        v_hi = v[(cum <= hi[:, None]).sum(axis=1)]
        out[ok, j] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


def baseline_ci(
    boot: Bootstrap, weights_n_boot: int, estimate: float, reps: np.ndarray, level: float,
    bounds: tuple[float, float],
) -> tuple[float, float]:
    from scipy import stats

    n_boot, (s, c) = weights_n_boot, boot.n_jack
    if not np.isfinite(estimate):
        return np.nan, np.nan
    lo, hi = percentile_ci(reps[:n_boot], level)
    if not np.isfinite(lo):
        return lo, hi
    var_s = _jackknife_var(reps[n_boot : n_boot + s])
    var_c = _jackknife_var(reps[n_boot + s :])
    var, sd, f = var_s + var_c, float(np.nanstd(reps[:n_boot])), 1.0
    if var > 0 and sd > 0:
        denom = (var_s**2 / (s - 1) if s > 1 else 0.0) + (var_c**2 / (c - 1) if c > 1 else 0.0)
        df = var**2 / denom if denom > 0 else 1.0
        alpha = (1.0 - level) / 2.0
        r = float(stats.t.ppf(1 - alpha, df) / stats.norm.ppf(1 - alpha))
        f = max(1.0, r * float(np.sqrt(var)) / sd, r)
    lo = min(estimate, estimate + f * (lo - estimate))  # reaches the estimate
    hi = max(estimate, estimate + f * (hi - estimate))
    return max(lo, bounds[0]), min(hi, bounds[1])  # kept in range, as results_ci does


def baseline_results_ci(
    metrics: pl.DataFrame, names: list[str], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pl.DataFrame:
    """results_ci before the fast path (hierarchical bootstrap only)."""
    design = design_from_metrics(metrics)
    boot = Bootstrap.__new__(Bootstrap)  # only design and n_jack: the weights are built here
    boot.design, boot.n_jack = design, (len(design.stainings), len(design.scanners))
    weights = np.vstack([
        hierarchical_weights(design, n_boot, seed),
        jackknife_weights(design),
    ])  # fmt: skip
    rows = []
    for ptype in pair_type_order(metrics["pair_type"].unique().to_list()):
        for name in names:
            values = metrics[name].to_numpy().astype(np.float64)
            mask = design.mask(ptype) & np.isfinite(values)
            sub = values[mask]
            defined = sub.size and mask.sum() == design.mask(ptype).sum()
            med = float(np.median(sub)) if defined else np.nan  # a NaN or inf: undefined
            reps = baseline_weighted_quantiles(sub, weights[:, mask], [0.5])
            m_lo, m_hi = baseline_ci(boot, n_boot, med, reps[:, 0], level, metric_bounds(name))
            rows.append({"pair_type": ptype, "metric": name, "median": med,
                         "median_ci_low": m_lo, "median_ci_high": m_hi})  # fmt: skip
    return pl.DataFrame(rows)


def import_ms(module: str) -> float:
    """Cumulative ``-X importtime`` of ``module`` in a fresh interpreter (numpy preloaded)."""
    code = f"import numpy, polars; import {module}"
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    ).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e3
    return float("nan")


def same_bits(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.columns == b.columns and all(
        np.array_equal(a[c].to_numpy().view(np.int64), b[c].to_numpy().view(np.int64))
        if a[c].dtype == pl.Float64 else a[c].equals(b[c])
        for c in a.columns
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    metrics, names = metrics_table()
    print(f"{platform.node()}  numpy {np.__version__}  {metrics.height} pairs x {len(names)} "
          f"metrics, n_boot {args.n_boot}, median of {args.repeat}")  # fmt: skip
    new = results_ci(metrics, names, n_boot=args.n_boot)  # warm-up (imports) and check
    old = baseline_results_ci(metrics, names, n_boot=args.n_boot)
    # The estimates agree bit for bit; the intervals differ by design since the per-pair-type
    # weights (docs/statistics.md) replaced the baseline's squared weights.
    keys = ["pair_type", "metric", "median"]
    assert same_bits(new.select(keys), old.select(keys)), "results_ci's medians differ"
    t_new, t_old = [], []
    for _ in range(args.repeat):  # interleaved: both see the same machine load
        t = time.perf_counter()
        results_ci(metrics, names, n_boot=args.n_boot)
        t_new.append(time.perf_counter() - t)
        t = time.perf_counter()
        baseline_results_ci(metrics, names, n_boot=args.n_boot)
        t_old.append(time.perf_counter() - t)
    new_ms, old_ms = 1e3 * np.median(t_new), 1e3 * np.median(t_old)
    print(f"results_ci        {new_ms:8.1f} ms   (medians identical; + worst-10% means)")
    print(f"baseline          {old_ms:8.1f} ms   ratio new/baseline {new_ms / old_ms:.3f}")
    stats_ms, special_ms = import_ms("scipy.stats"), import_ms("scipy.special")
    print(f"import scipy.stats   {stats_ms:8.1f} ms (baseline's widening)")
    print(f"import scipy.special {special_ms:8.1f} ms (now)")


if __name__ == "__main__":
    main()
