"""Hierarchical bootstrap over stainings and scanners, fully vectorised.

Slide pairs are not independent: the 4,095 PLISM pairs share 91 slides, which share 13
stainings and 7 scanners. A resample draws stainings and scanners with replacement; a
slide is drawn as often as its staining times its scanner; a pair of distinct slides is
drawn as often as the product of its slides' counts. Each resample is thus a row of
integer *multiplicities* over the observed pairs, and a statistic over the resampled
pairs is a weighted statistic over the observed ones. All resamples are one
``(n_boot, n_pairs)`` matrix; quantiles of all resamples come from one sort, one
cumulative sum and a bisection over all rows (no loop over resamples or pairs; see
:mod:`plismbench.stats.wquantiles`).

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
from plismbench.stats.wquantiles import (
    INT32_MAX,
    Workspace,
    accumulator,
    column_quantiles,
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


def slide_weights(design: Design, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_slides) multiplicity of every slide when stainings and scanners are resampled."""
    rng = np.random.default_rng(seed)
    stain = unit_counts(len(design.stainings), n_boot, rng)
    scan = unit_counts(len(design.scanners), n_boot, rng)
    return stain[:, design.staining_of] * scan[:, design.scanner_of]


def pair_products(
    slides: np.ndarray, design: Design, dtype: type = np.int64, zero_column: bool = False
) -> np.ndarray:
    """(n_rows, n_pairs) C-ordered products of each pair's two slide weights, in ``dtype``.

    ``zero_column``: one more column, of zeros (a pair of a slide that is never drawn).
    """
    a, b = design.pair_a, design.pair_b
    if zero_column:
        slides = np.hstack([slides, np.zeros((len(slides), 1), dtype=slides.dtype)])
        a, b = np.append(a, len(slides[0]) - 1), np.append(b, len(slides[0]) - 1)
    slides = slides.astype(dtype, copy=False)
    out = np.take(slides, a, axis=1)
    out *= np.take(slides, b, axis=1)
    return out


def hierarchical_weights(design: Design, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicity of every pair when stainings and scanners are resampled."""
    return pair_products(slide_weights(design, n_boot, seed), design)


def pair_weights(n_pairs: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicities of the naive bootstrap that resamples pairs."""
    return unit_counts(n_pairs, n_boot, np.random.default_rng(seed))


def jackknife_slides(units: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, n_slides) slide weights with one unit left out per row (0 or 1)."""
    return (np.arange(n_units)[:, None] != units[None, :]).astype(np.int64)


def jackknife_weights(units: np.ndarray, n_units: int, design: Design) -> np.ndarray:
    """(n_units, n_pairs) pair weights with one unit left out per row (0 or 1)."""
    return pair_products(jackknife_slides(units, n_units), design)


def percentile_ci(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates ignored)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


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
    before :meth:`ci` turns them into an interval.
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
            slides = np.vstack(
                [
                    slide_weights(design, n_boot, seed),
                    jackknife_slides(design.staining_of, s),
                    jackknife_slides(design.scanner_of, c),
                ]
            )
            self.n_jack = (s, c)
            # A row totals at most n_pairs x the largest pair weight: int32 sums when that
            # fits (PLISM: 4,095 x 91^2 = 3.4e7; in fact at most 4,095, see wquantiles).
            top = int(slides.max(initial=0)) ** 2
            self._acc = np.int32 if design.n_pairs * top <= INT32_MAX else np.int64
            compact = pair_products(slides, design, smallest_int(top), zero_column=True)
        #: C-ordered, in the smallest integer type (int16 on PLISM), gathered once a metric,
        #: with a last column of zeros (:mod:`plismbench.stats.bytype` reads it first).
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
        """:meth:`quantiles` of every pair type and of ``all``, from one gather and one
        cumulative sum of the weights (see :mod:`plismbench.stats.bytype`)."""
        out, every = quantiles_by_group(
            self._compact, self.design.n_pairs, self._type_code, self._types.tolist(),
            np.asarray(values), qs, self._acc, self._work,
        )  # fmt: skip
        out[ALL] = every
        return out

    def median(self, values: np.ndarray, pair_type: str) -> np.ndarray:
        """Replicates of the median over one pair type."""
        return self.quantiles(values, pair_type, [0.5])[:, 0]

    def boot(self, reps: np.ndarray) -> np.ndarray:
        """The bootstrap part of a replicate vector."""
        return reps[: self.n_boot]

    def widening(self, estimate: float, reps: np.ndarray, level: float = LEVEL) -> float:
        """Factor (>= 1) by which bootstrap deviations are stretched for few units.

        The hierarchical bootstrap's spread is too small with few units (7 scanners):
        a unit drawn twice loses its pairs with itself, and the (n-1)/n shrinkage
        remains. Deviations from ``estimate`` are therefore stretched (never shrunk)
        until the interval's half-width reaches ``t_df x`` the jackknife standard error,
        with ``df`` from Satterthwaite over the staining and scanner parts. 1 for the
        naive pair bootstrap.
        """
        if self.naive or not np.isfinite(estimate):
            return 1.0
        from scipy.special import ndtri, stdtrit  # t and normal quantiles; lighter than stats

        s, c = self.n_jack
        var_s = _jackknife_var(reps[self.n_boot : self.n_boot + s])
        var_c = _jackknife_var(reps[self.n_boot + s :])
        var = var_s + var_c
        sd = float(np.nanstd(self.boot(reps)))
        if not (var > 0 and sd > 0):
            return 1.0
        denom = (var_s**2 / (s - 1) if s > 1 else 0.0) + (var_c**2 / (c - 1) if c > 1 else 0.0)
        df = var**2 / denom if denom > 0 else 1.0
        alpha = (1.0 - level) / 2.0
        factor = stdtrit(df, 1 - alpha) * np.sqrt(var) / (ndtri(1 - alpha) * sd)
        return max(1.0, float(factor))

    def ci(
        self, estimate: float, reps: np.ndarray, level: float = LEVEL, bounds: Bounds = UNBOUNDED
    ) -> tuple[float, float]:
        """Percentile interval of the bootstrap, widened around ``estimate`` for few units,
        and kept within ``bounds``, the values the statistic can take
        (:mod:`plismbench.stats.bounds`)."""
        lo, hi = percentile_ci(self.boot(reps), level)
        if not (np.isfinite(estimate) and np.isfinite(lo)):
            return lo, hi
        f = self.widening(estimate, reps, level)
        lo, hi = estimate + f * (lo - estimate), estimate + f * (hi - estimate)
        return max(lo, bounds[0]), min(hi, bounds[1])

    def p_value(self, estimate: float, reps: np.ndarray) -> float:
        """Two-sided bootstrap p-value of ``estimate == 0`` (a difference between models).

        The centred, widened bootstrap distribution is the null: ``(1 + #{f |d* - d| >=
        |d|}) / (1 + n_boot)``.
        """
        boot = self.boot(reps)
        boot = boot[np.isfinite(boot)]
        if not np.isfinite(estimate) or boot.size == 0:
            return float("nan")
        f = self.widening(estimate, reps)
        extreme = np.sum(f * np.abs(boot - estimate) >= abs(estimate) - 1e-12)
        return float((1 + extreme) / (1 + boot.size))
