"""Hierarchical bootstrap over stainings and scanners, fully vectorised.

Slide pairs are not independent: the 4,095 PLISM pairs share 91 slides, which share 13
stainings and 7 scanners. A resample draws stainings and scanners with replacement; a
pair is drawn as often as the product of the counts of its *distinct* units: a
cross-scanner pair (one staining, two scanners) ``k_s * m_1 * m_2`` times, a
cross-staining pair ``k_1 * k_2 * m_c``, a cross-both pair ``k_1 * k_2 * m_1 * m_2``
(docs/statistics.md derives it: a copy of a staining is another staining in the
resampled world, so pairs across two copies are not same-staining pairs; they are not
observable and are dropped, never counted as cross-scanner). Each resample is thus a row of
integer *multiplicities* over the observed pairs, and a statistic over the resampled
pairs is a weighted statistic over the observed ones. All resamples are one
``(n_boot, n_pairs)`` matrix; quantiles of all resamples come from one sort, one
cumulative sum and a bisection over all rows (no loop over resamples or pairs; see
`plismbench.stats.wquantiles`).

Weighted quantiles equal NumPy's default (linear) ``np.quantile`` of the pairs repeated
by their multiplicities, so a resample of weight one everywhere gives the plain median.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from plismbench.metrics.aggregate import ALL
from plismbench.stats.bounds import UNBOUNDED, Bounds
from plismbench.stats.bytype import quantiles_by_group
from plismbench.stats.tail import TAIL
from plismbench.stats.wquantiles import (
    INT32_MAX,
    Workspace,
    accumulator,
    column_quantiles,
    count_at_most,
    flat_reader,
    prefix_sums,
    smallest_int,
)
from plismbench.stats.wquantiles import weighted_quantiles as weighted_quantiles  # re-exported
from plismbench.store.design import Design

#: Default number of resamples, seed and interval level.
N_BOOT = 1000
SEED = 0
LEVEL = 0.95


def unit_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units) times each unit is drawn when drawing ``n_units`` with replacement."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units)
    return counts.reshape(n_boot, n_units)


def resampled_units(
    design: Design, n_boot: int = N_BOOT, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(n_boot, n_stainings) and (n_boot, n_scanners) draw counts of every unit."""
    rng = np.random.default_rng(seed)
    return (
        unit_counts(len(design.stainings), n_boot, rng),
        unit_counts(len(design.scanners), n_boot, rng),
    )


def unit_pair_weights(
    stain: np.ndarray, scan: np.ndarray, design: Design, dtype: type = np.int64,
    zero_column: bool = False,
) -> np.ndarray:  # fmt: skip
    """(n_rows, n_pairs) C-ordered pair multiplicities from unit counts, in ``dtype``.

    A pair's weight is the product of the counts of its distinct stainings and distinct
    scanners: each unit counts once however many of the pair's slides it holds.
    ``zero_column``: one more column, of zeros (read first by the quantile routines).
    """
    sa, sb = design.staining_of[design.pair_a], design.staining_of[design.pair_b]
    ca, cb = design.scanner_of[design.pair_a], design.scanner_of[design.pair_b]
    stain, scan = stain.astype(dtype, copy=False), scan.astype(dtype, copy=False)
    out = np.take(stain, sa, axis=1)
    cross = np.flatnonzero(sa != sb)
    out[:, cross] *= np.take(stain, sb[cross], axis=1)
    out *= np.take(scan, ca, axis=1)
    cross = np.flatnonzero(ca != cb)
    out[:, cross] *= np.take(scan, cb[cross], axis=1)
    if zero_column:
        out = np.hstack([out, np.zeros((len(out), 1), dtype=out.dtype)])
    return np.ascontiguousarray(out)


def hierarchical_weights(design: Design, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicity of every pair when stainings and scanners are resampled."""
    return unit_pair_weights(*resampled_units(design, n_boot, seed), design)


def pair_weights(n_pairs: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicities of the naive bootstrap that resamples pairs."""
    return unit_counts(n_pairs, n_boot, np.random.default_rng(seed))


def jackknife_units(n_stainings: int, n_scanners: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit counts of the leave-one-staining-out rows, then the leave-one-scanner-out rows."""
    s, c = n_stainings, n_scanners
    stain = np.vstack([1 - np.eye(s, dtype=np.int64), np.ones((c, s), dtype=np.int64)])
    scan = np.vstack([np.ones((s, c), dtype=np.int64), 1 - np.eye(c, dtype=np.int64)])
    return stain, scan


def jackknife_weights(design: Design) -> np.ndarray:
    """(n_stainings + n_scanners, n_pairs) pair weights, one unit left out per row (0/1)."""
    return unit_pair_weights(*jackknife_units(len(design.stainings), len(design.scanners)), design)


def percentile_ci(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates ignored)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def share_above(differences: np.ndarray) -> float:
    """P(A > B) from paired replicates of A - B: the share above 0, ties counting half
    (NaN replicates, resamples without a value, left out)."""
    d = differences[np.isfinite(differences)]
    if d.size == 0:
        return float("nan")
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def _jackknife_var(reps: np.ndarray) -> float:
    reps = reps[np.isfinite(reps)]
    n = len(reps)
    return float((n - 1) / n * np.sum((reps - reps.mean()) ** 2)) if n > 1 else 0.0


class Bootstrap:
    """Resampling weights for one design, shared by every model on that design.

    Models evaluated on the same slide pairs get the same resamples (same seed), so their
    replicates are paired and differences between models have valid intervals.

    Every statistic is computed at once for ``n_boot`` bootstrap resamples followed by
    the leave-one-staining-out and leave-one-scanner-out jackknife: a *replicate vector*
    of length ``n_boot + n_stainings + n_scanners``. Replicate vectors of several
    statistics combine elementwise (a mean of medians, a difference between models)
    before `ci()` turns them into an interval.
    """

    def __init__(
        self, design: Design, n_boot: int = N_BOOT, seed: int = SEED, naive: bool = False
    ) -> None:
        self.design = design
        self.n_boot = n_boot
        self.seed = seed
        self.naive = naive
        if naive:
            counts = pair_weights(design.n_pairs, n_boot, seed)
            self.n_jack = (0, 0)
            self._acc = accumulator(counts)
            zero = np.zeros((len(counts), 1), dtype=counts.dtype)
            compact = np.hstack([counts, zero]).astype(smallest_int(int(counts.max(initial=0))))
        else:
            s, c = len(design.stainings), len(design.scanners)
            boot_st, boot_sc = resampled_units(design, n_boot, seed)
            jack_st, jack_sc = jackknife_units(s, c)
            stain, scan = np.vstack([boot_st, jack_st]), np.vstack([boot_sc, jack_sc])
            self.n_jack = (s, c)
            # A row totals at most n_pairs x the largest pair weight: int32 sums when that
            # fits (PLISM: 4,095 x 13^2 x 7^2 = 3.4e7).
            top = int(stain.max(initial=0)) ** 2 * int(scan.max(initial=0)) ** 2
            self._acc = np.int32 if design.n_pairs * top <= INT32_MAX else np.int64
            compact = unit_pair_weights(stain, scan, design, smallest_int(top), zero_column=True)
        #: C-ordered, in the smallest integer type (int16 on PLISM), gathered once a metric,
        #: with a last column of zeros (`plismbench.stats.bytype` reads it first).
        self._compact = compact
        self._work = Workspace()
        self._types, self._type_code = np.unique(design.pair_type, return_inverse=True)

    @property
    def n_replicates(self) -> int:
        """``n_boot`` plus the jackknife rows: the length of every replicate vector."""
        return len(self._compact)

    @cached_property
    def weights(self) -> np.ndarray:
        """(n_replicates, n_pairs) multiplicities: int32 when every row's total fits."""
        return self._compact[:, :-1].astype(self._acc)

    def quantiles(self, values: np.ndarray, pair_type: str, qs: Sequence[float]) -> np.ndarray:
        """(n_replicates, len(qs)) replicates of quantiles of ``values`` over one pair type."""
        values = np.asarray(values)
        cols = np.flatnonzero(self.design.mask(pair_type) & np.isfinite(values))
        cols = cols[np.argsort(values[cols], kind="stable")]
        v = values[cols].astype(np.float64)
        return column_quantiles(self._compact, cols, v, qs, self._acc, self._work)

    def quantiles_by_type(self, values: np.ndarray, qs: Sequence[float]) -> dict[str, np.ndarray]:
        """`quantiles()` of every pair type and of ``all``, from one gather and one
        cumulative sum of the weights (see `plismbench.stats.bytype`)."""
        out, every = quantiles_by_group(
            self._compact, self.design.n_pairs, self._type_code, self._types.tolist(),
            np.asarray(values), qs, self._acc, self._work,
        )  # fmt: skip
        out[ALL] = every
        return out

    def worst_by_type(
        self, values: np.ndarray, higher_is_better: bool = True, q: float = TAIL
    ) -> dict[str, np.ndarray]:
        """Replicates of the worst-``q`` mean (`plismbench.stats.tail`) of every pair type
        and of ``all``, under the same resamples as the medians.

        Integer cumulative weights (as for the quantiles) and a bisection find each row's
        boundary; the weighted values are summed only over the prefix that the largest
        tail reaches (about a tenth to a third of the pairs).
        """
        sign = 1.0 if higher_is_better else -1.0
        values = sign * np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        out: dict[str, np.ndarray] = {}
        for ptype in (*self._types.tolist(), ALL):
            cols = np.flatnonzero(self.design.mask(ptype) & finite)
            cols = cols[np.argsort(values[cols], kind="stable")]
            out[ptype] = sign * self._lower_mean(values[cols], cols, q)
        return out

    def _lower_mean(self, v: np.ndarray, cols: np.ndarray, q: float) -> np.ndarray:
        """`plismbench.stats.tail.lower_mean` of sorted ``v`` under every resample."""
        n = len(cols)
        res = np.full(self.n_replicates, np.nan)
        if n == 0:
            return res
        cum = prefix_sums(self._compact, cols, self._acc, self._work)
        total = cum[:, -1].astype(np.float64)
        tau = q * total
        rows = np.arange(len(cum))
        j = count_at_most(flat_reader(cum, rows), n, tau)  # values wholly in the tail
        prev = np.where(j > 0, cum[rows, np.maximum(j - 1, 0)], 0).astype(np.float64)
        top = min(int(j.max()) + 1, n)
        part = np.take(self._compact, cols[:top], axis=1).astype(np.float64)
        part *= v[:top]
        part[np.arange(top)[None, :] >= j[:, None]] = 0.0
        head = part.sum(axis=1)
        rest = np.maximum(tau - prev, 0.0) * v[np.minimum(j, n - 1)]
        ok = tau > 0
        res[ok] = (head[ok] + rest[ok]) / tau[ok]
        return res

    def median(self, values: np.ndarray, pair_type: str) -> np.ndarray:
        """Replicates of the median over one pair type."""
        return self.quantiles(values, pair_type, [0.5])[:, 0]

    def boot(self, reps: np.ndarray) -> np.ndarray:
        """The bootstrap part of a replicate vector."""
        return reps[: self.n_boot]

    def _jackknife(self, estimate: float, reps: np.ndarray) -> tuple[float, float, float] | None:
        """(jackknife variance, Satterthwaite df, bootstrap sd), or None: no widening."""
        if self.naive or not np.isfinite(estimate):
            return None
        s, c = self.n_jack
        var_s = _jackknife_var(reps[self.n_boot : self.n_boot + s])
        var_c = _jackknife_var(reps[self.n_boot + s :])
        var = var_s + var_c
        sd = float(np.nanstd(self.boot(reps)))
        if not (var > 0 and sd > 0):
            return None
        denom = (var_s**2 / (s - 1) if s > 1 else 0.0) + (var_c**2 / (c - 1) if c > 1 else 0.0)
        return var, (var**2 / denom if denom > 0 else 1.0), sd

    @staticmethod
    def _factor(parts: tuple[float, float, float] | None, level: float) -> float:
        if parts is None:
            return 1.0
        from scipy.special import ndtri, stdtrit  # t and normal quantiles; lighter than stats

        var, df, sd = parts
        alpha = (1.0 - level) / 2.0
        t_over_z = float(stdtrit(df, 1 - alpha) / ndtri(1 - alpha))
        # at least t/z: with df effective units the percentile interval is a normal one
        # where a t one is due (tests/stats/test_coverage.py: the cross-staining median
        # under a strong scanner effect covers 0.90 without it, 0.94 with it)
        return max(1.0, t_over_z * float(np.sqrt(var)) / sd, t_over_z)

    def widening(self, estimate: float, reps: np.ndarray, level: float = LEVEL) -> float:
        """Factor (>= 1) by which bootstrap deviations are stretched for few units.

        The hierarchical bootstrap's spread is too small with few units (7 scanners):
        the (n-1)/n shrinkage remains, and a percentile interval is a normal interval
        where a t one is due. Deviations from ``estimate`` are therefore stretched (never
        shrunk) until the interval's half-width reaches ``t_df x`` the jackknife standard
        error, and at least by ``t_df / z``, with ``df`` from Satterthwaite over the
        staining and scanner parts. 1 for the naive pair bootstrap.
        """
        return self._factor(self._jackknife(estimate, reps), level)

    def _interval(
        self, estimate: float, boot: np.ndarray, parts: tuple[float, float, float] | None,
        level: float, bounds: Bounds, contain: float | None = None,
    ) -> tuple[float, float]:  # fmt: skip
        if not np.isfinite(estimate):
            return float("nan"), float("nan")  # undefined stays undefined
        lo, hi = percentile_ci(boot, level)
        if not np.isfinite(lo):
            return lo, hi
        f = self._factor(parts, level)
        # A skewed or discrete bootstrap can put both ends on one side of the estimate:
        # the interval always reaches the estimate (an interval that excludes its own
        # estimate is no statement about it).
        lo = min(estimate, estimate + f * (lo - estimate))
        hi = max(estimate, estimate + f * (hi - estimate))
        if contain is not None:  # the reported estimate, when centred elsewhere
            lo, hi = min(lo, contain), max(hi, contain)
        return max(lo, bounds[0]), min(hi, bounds[1])

    def debiased(self, estimate: float, reps: np.ndarray) -> tuple[float, np.ndarray]:
        """``(estimate - bias, reps - 2 bias)``, bias = mean bootstrap replicate - estimate.

        A percentile interval of these is centred on the bias-corrected estimate; used
        for the worst-10% mean, whose resamples (fewer distinct units) have a lighter
        tail than the data (docs/statistics.md, "Tail robustness").
        """
        boot = self.boot(reps)
        finite = boot[np.isfinite(boot)]
        if not np.isfinite(estimate) or finite.size == 0:
            return estimate, reps
        bias = float(finite.mean()) - estimate
        return estimate - bias, reps - 2.0 * bias

    def ci(
        self, estimate: float, reps: np.ndarray, level: float = LEVEL, bounds: Bounds = UNBOUNDED,
        debias: bool = False,
    ) -> tuple[float, float]:  # fmt: skip
        """Percentile interval of the bootstrap, widened around ``estimate`` for few units,
        stretched to contain ``estimate``, and kept within ``bounds``, the values the
        statistic can take (`plismbench.stats.bounds`). NaN for a NaN estimate.

        ``debias``: centred on the bias-corrected estimate (`debiased()`), still
        containing ``estimate``."""
        if debias:
            center, shifted = self.debiased(estimate, reps)
            return self._interval(center, self.boot(shifted), self._jackknife(center, shifted),
                                  level, bounds, estimate)  # fmt: skip
        return self._interval(estimate, self.boot(reps), self._jackknife(estimate, reps),
                              level, bounds)  # fmt: skip

    def p_value(
        self, estimate: float, reps: np.ndarray, null: float = 0.0, debias: bool = False
    ) -> float:
        """Two-sided p-value of ``estimate == null`` by inverting `ci()` (with ``debias``).

        The smallest ``1 - level`` whose interval excludes ``null``, so that "the 95%
        interval excludes 0" and "p < 0.05" are one decision (never below
        ``1 / (1 + n_boot)``; 1 when every interval contains ``null``).
        """
        contain = estimate if debias else None
        if debias:
            estimate, reps = self.debiased(estimate, reps)
        boot = self.boot(reps)
        finite = boot[np.isfinite(boot)]
        if not np.isfinite(estimate) or finite.size == 0:
            return float("nan")
        parts = self._jackknife(estimate, reps)

        def excludes(alpha: float) -> bool:
            lo, hi = self._interval(estimate, finite, parts, 1.0 - alpha, UNBOUNDED, contain)
            return not (lo <= null <= hi)

        floor = 1.0 / (1 + finite.size)
        if excludes(floor):
            return floor
        if not excludes(1.0 - 1e-12):
            return 1.0
        lo, hi = floor, 1.0 - 1e-12  # excludes(hi) and not excludes(lo)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if excludes(mid) else (mid, hi)
        return float(hi)
