"""Power of ``compare`` for top-10 cross-scanner against a test that knows the true spread.

    uv run python benchmarks/bench_compare_power.py            # 200 data sets per shift
    uv run python benchmarks/bench_compare_power.py --n-sim 400 --figure docs/img/compare_power.svg

Two models on the real 13 stainings x 7 scanners; each has its own staining, scanner,
slide and pair effects (strong staining effect, as in issue 19), model A is shifted by
``+shift`` on every pair. ``compare``'s row is reproduced with the package's own
``Bootstrap`` (seed 0, 1,000 resamples, as ``compare`` runs): the difference of the two
medians, its replicates, and the p-value that inverts the interval (p < 0.05).

The oracle ("known spread"): a z-test with the true standard deviation of the difference
of medians, measured on 4,000 null data sets. Baseline: the same bootstrap with the
squared weights it had before issue 19 (a staining drawn k times gave its cross-scanner
pairs the weight k^2 m1 m2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from plismbench.stats.bootstrap import Bootstrap, resampled_units
from plismbench.store.design import Design, design_from_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' fixtures
from synthetic import pairs_frame

PTYPE = "cross-scanner"
STAINING_SD, SCANNER_SD, SLIDE_SD, PAIR_SD = 0.07, 0.02, 0.02, 0.03


def simulate(d: Design, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, n_pairs) top-10-like values of one model (centred at 0.5)."""
    sa, sb = d.staining_of[d.pair_a], d.staining_of[d.pair_b]
    ca, cb = d.scanner_of[d.pair_a], d.scanner_of[d.pair_b]
    st = rng.normal(0, STAINING_SD, (n, len(d.stainings)))
    sc = rng.normal(0, SCANNER_SD, (n, len(d.scanners)))
    sl = rng.normal(0, SLIDE_SD, (n, len(d.slides)))
    return (0.5 + st[:, sa] + st[:, sb] + sc[:, ca] + sc[:, cb] + sl[:, d.pair_a]
            + sl[:, d.pair_b] + rng.normal(0, PAIR_SD, (n, d.n_pairs)))  # fmt: skip


def squared_weights_bootstrap(d: Design) -> Bootstrap:
    """The bootstrap before issue 19: slide weight k*m, pair weight the product of both
    slides' (a unit shared by the two slides counted squared)."""
    boot = Bootstrap(d)
    stain, scan = resampled_units(d, boot.n_boot, boot.seed)
    slide = stain[:, d.staining_of] * scan[:, d.scanner_of]
    old = slide[:, d.pair_a] * slide[:, d.pair_b]
    compact = boot._compact.copy()
    compact[: boot.n_boot, :-1] = old
    boot._compact = compact
    boot.__dict__.pop("weights", None)
    return boot


def power(boot: Bootstrap, a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    hits = 0
    for va, vb in zip(a, b, strict=True):
        diff = float(np.median(va[mask]) - np.median(vb[mask]))
        reps = boot.median(va, PTYPE) - boot.median(vb, PTYPE)
        hits += boot.p_value(diff, reps) < 0.05
    return hits / len(a)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-sim", type=int, default=200)
    ap.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    ap.add_argument("--figure", default=None, help="write the power curves (SVG)")
    args = ap.parse_args()
    d = design_from_metrics(pairs_frame(13, 7))
    mask = d.mask(PTYPE)
    rng = np.random.default_rng(0)
    null = simulate(d, rng, 4000)[:, mask], simulate(d, rng, 4000)[:, mask]
    true_sd = float(np.std(np.median(null[0], axis=1) - np.median(null[1], axis=1)))
    new, old = Bootstrap(d), squared_weights_bootstrap(d)
    rows = []
    t0 = time.perf_counter()
    for shift in args.shifts:
        a = simulate(d, rng, args.n_sim) + shift
        b = simulate(d, rng, args.n_sim)
        diffs = np.median(a[:, mask], axis=1) - np.median(b[:, mask], axis=1)
        known = float(np.mean(np.abs(diffs) > 1.959964 * true_sd))
        rows.append((shift, power(new, a, b, mask), power(old, a, b, mask), known))
        print(f"shift {shift:+.2f}: compare {rows[-1][1]:.3f}  squared weights "
              f"{rows[-1][2]:.3f}  known spread {known:.3f}", flush=True)  # fmt: skip
    print(f"true sd of the difference {true_sd:.4f}; {time.perf_counter() - t0:.0f} s")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        x = [r[0] for r in rows]
        for k, label in ((3, "known-spread z-test (oracle)"), (1, "compare (each unit once)"),
                         (2, "compare before (squared weights)")):  # fmt: skip
            ax.plot(x, [r[k] for r in rows], marker="o", label=label)
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("planted difference in top-10 accuracy")
        ax.set_ylabel("power (p < 0.05)")
        ax.set_title(f"Top-10 cross-scanner, 13 x 7 design, {args.n_sim} data sets")
        ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        fig.savefig(args.figure, metadata={"Date": None})


if __name__ == "__main__":
    main()
