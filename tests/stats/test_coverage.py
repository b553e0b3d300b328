"""Coverage of the intervals on the real design: 13 stainings x 7 scanners, true value known.

Pair value = the pair type's mean + the effects of both slides' staining and scanner
(a unit shared by the two slides counts twice) + slide and pair noise. The population
median of a pair type is its mean; that of ``all`` is the median of the mixture of the
three pair types in the design's proportions (found by root-finding on its CDF). The
leaderboard-like score is the mean of the ``all`` median and the three pair-type
medians. 200 data sets per design, 200 resamples, a fresh set of resamples every 20
data sets (one set shared by all makes the 200 outcomes correlated: 0.905 to 0.96 from
seed to seed; 600 data sets with 30 sets: 0.935 to 0.952 under a strong scanner effect).

Issue 19 measured with the squared weights: cross-scanner 1.000 under a strong staining
effect, cross-staining 0.990 under a strong scanner effect.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from synthetic import pairs_frame

from plismbench.stats.bootstrap import Bootstrap
from plismbench.stats.tail import TAIL, worst_mean_of
from plismbench.store.design import Design, design_from_metrics

TYPES = ("cross-scanner", "cross-staining", "cross-scanner-cross-staining")
MEANS = {"cross-scanner": 0.4, "cross-staining": 0.2, "cross-scanner-cross-staining": 0.0}
SLIDE_SD, PAIR_SD = 0.1, 0.2
N_SIM, N_BOOT = 200, 200


def _design() -> Design:
    return design_from_metrics(pairs_frame(13, 7))


def true_medians(d: Design, staining_sd: float, scanner_sd: float) -> dict[str, float]:
    """Population medians: each type's mean, and the mixture median for ``all``."""
    var = 2 * SLIDE_SD**2 + PAIR_SD**2
    sd = {
        "cross-scanner": np.sqrt(4 * staining_sd**2 + 2 * scanner_sd**2 + var),
        "cross-staining": np.sqrt(2 * staining_sd**2 + 4 * scanner_sd**2 + var),
        "cross-scanner-cross-staining": np.sqrt(2 * staining_sd**2 + 2 * scanner_sd**2 + var),
    }
    share = {t: float(np.mean(d.pair_type == t)) for t in TYPES}

    def cdf(x: float) -> float:
        return sum(share[t] * stats.norm.cdf(x, MEANS[t], sd[t]) for t in TYPES) - 0.5

    truth = dict(MEANS)
    truth["all"] = optimize.brentq(cdf, -10, 10)
    truth["score"] = (truth["all"] + sum(MEANS[t] for t in TYPES)) / 4
    return truth


def simulate(
    d: Design, rng: np.random.Generator, staining_sd: float, scanner_sd: float,
    n_sim: int = N_SIM,
) -> np.ndarray:  # fmt: skip
    """(n_sim, n_pairs) pair values, all data sets at once."""
    sa, sb = d.staining_of[d.pair_a], d.staining_of[d.pair_b]
    ca, cb = d.scanner_of[d.pair_a], d.scanner_of[d.pair_b]
    mean = np.select([d.pair_type == t for t in TYPES], [MEANS[t] for t in TYPES])
    st = rng.normal(0, staining_sd, (n_sim, len(d.stainings)))
    sc = rng.normal(0, scanner_sd, (n_sim, len(d.scanners)))
    slide = rng.normal(0, SLIDE_SD, (n_sim, d.n_slides))
    noise = rng.normal(0, PAIR_SD, (n_sim, d.n_pairs))
    return (mean + st[:, sa] + st[:, sb] + sc[:, ca] + sc[:, cb]
            + slide[:, d.pair_a] + slide[:, d.pair_b] + noise)  # fmt: skip


def coverage(staining_sd: float, scanner_sd: float, seed: int) -> dict[str, float]:
    d = _design()
    truth = true_medians(d, staining_sd, scanner_sd)
    values = simulate(d, np.random.default_rng(seed), staining_sd, scanner_sd)
    masks = {t: d.mask(t) for t in (*TYPES, "all")}
    hits = dict.fromkeys((*TYPES, "all", "score"), 0)
    for i, v in enumerate(values):
        if i % 20 == 0:
            boot = Bootstrap(d, N_BOOT, seed * 1000 + i)
        reps = {t: r[:, 0] for t, r in boot.quantiles_by_type(v, [0.5]).items()}
        medians = {t: float(np.median(v[m])) for t, m in masks.items()}
        for t in masks:
            lo, hi = boot.ci(medians[t], reps[t])
            hits[t] += lo <= truth[t] <= hi
        score = (medians["all"] + sum(medians[t] for t in TYPES)) / 4
        lo, hi = boot.ci(score, (reps["all"] + sum(reps[t] for t in TYPES)) / 4)
        hits["score"] += lo <= truth["score"] <= hi
    return {k: h / N_SIM for k, h in hits.items()}


@pytest.mark.parametrize(
    ("staining_sd", "scanner_sd"),
    [(1.0, 0.2), (0.2, 1.0), (0.6, 0.6)],
    ids=["strong-staining", "strong-scanner", "balanced"],
)
def test_coverage_of_every_pair_type_and_the_score(staining_sd: float, scanner_sd: float) -> None:
    got = coverage(staining_sd, scanner_sd, seed=5)
    bad = {k: v for k, v in got.items() if not 0.92 <= v <= 0.98}
    assert not bad, got


# ---------------------------------------------------------------- the worst-10% mean
# Two true values of the worst-10% mean of a pair type:
# - population: the mean of the lowest 10% of the population distribution of the pair
#   type (normal; for all, the mixture of the three), what infinitely many stainings and
#   scanners would give;
# - design: the expected worst-10% mean of a 13 x 7 benchmark (the mean of the estimate
#   over 2,000 simulated data sets), what a rerun with other stainings and scanners of
#   the same number would give on average.
# The observed pairs miss much of the between-unit spread, so the estimate lies above
# both and no interval from the same 13 and 7 units covers well: docs/statistics.md
# ("Tail robustness") has the table, from tail_coverage() with n_sim = 200.
TAIL_BOOT = 200


def population_tail(d: Design, staining_sd: float, scanner_sd: float) -> dict[str, float]:
    """Lower-decile means of the normal pair types and of their mixture (``all``)."""
    var = 2 * SLIDE_SD**2 + PAIR_SD**2
    sd = {
        "cross-scanner": np.sqrt(4 * staining_sd**2 + 2 * scanner_sd**2 + var),
        "cross-staining": np.sqrt(2 * staining_sd**2 + 4 * scanner_sd**2 + var),
        "cross-scanner-cross-staining": np.sqrt(2 * staining_sd**2 + 2 * scanner_sd**2 + var),
    }
    share = {t: float(np.mean(d.pair_type == t)) for t in TYPES}
    out = {t: MEANS[t] - sd[t] * stats.norm.pdf(stats.norm.ppf(TAIL)) / TAIL for t in TYPES}

    def cdf(x: float) -> float:
        return sum(share[t] * stats.norm.cdf(x, MEANS[t], sd[t]) for t in TYPES) - TAIL

    x = optimize.brentq(cdf, -20, 20)
    out["all"] = sum(
        share[t] * (MEANS[t] * stats.norm.cdf(x, MEANS[t], sd[t])
                    - sd[t] * stats.norm.pdf((x - MEANS[t]) / sd[t]))
        for t in TYPES
    ) / TAIL  # fmt: skip
    return out


def design_tail(
    d: Design, staining_sd: float, scanner_sd: float, n: int = 2000
) -> dict[str, float]:
    """The expected worst-10% mean of a benchmark of this design, by simulation."""
    values = simulate(d, np.random.default_rng(999), staining_sd, scanner_sd, n)
    out = {}
    for t in (*TYPES, "all"):
        sub = np.sort(values[:, d.mask(t)], axis=1)
        k = TAIL * sub.shape[1]
        full = int(k)
        out[t] = float(np.mean((sub[:, :full].sum(1) + (k - full) * sub[:, full]) / k))
    return out


def tail_coverage(
    staining_sd: float, scanner_sd: float, n_sim: int, seed: int = 5
) -> dict[tuple[str, str, str], float]:
    """{(interval, truth, pair type): coverage}; interval ``percentile`` or ``debiased``
    (the one plismbench prints), truth ``population`` or ``design``."""
    d = _design()
    truths = {"population": population_tail(d, staining_sd, scanner_sd),
              "design": design_tail(d, staining_sd, scanner_sd)}  # fmt: skip
    values = simulate(d, np.random.default_rng(seed), staining_sd, scanner_sd, n_sim)
    hits: dict[tuple[str, str, str], int] = {}
    for i, v in enumerate(values):
        if i % 20 == 0:
            boot = Bootstrap(d, TAIL_BOOT, seed * 1000 + i)  # a fresh set every 20 data sets
        reps = boot.worst_by_type(v)
        for t in (*TYPES, "all"):
            est = worst_mean_of(v[d.mask(t)])
            for kind, debias in (("percentile", False), ("debiased", True)):
                lo, hi = boot.ci(est, reps[t], debias=debias)
                for name, truth in truths.items():
                    key = (kind, name, t)
                    hits[key] = hits.get(key, 0) + int(lo <= truth[t] <= hi)
    return {k: h / n_sim for k, h in hits.items()}


def test_worst10_interval_covers_the_design_value_near_0_9_when_balanced() -> None:
    """Cheap (100 data sets): documented 0.885 to 0.92 with 200, short of 0.95; the
    bias correction beats the plain percentile interval."""
    got = tail_coverage(0.6, 0.6, n_sim=100)
    debiased = {t: got["debiased", "design", t] for t in (*TYPES, "all")}
    percentile = {t: got["percentile", "design", t] for t in (*TYPES, "all")}
    assert all(0.78 <= c <= 0.97 for c in debiased.values()), debiased
    assert sum(debiased.values()) > sum(percentile.values()), (debiased, percentile)
