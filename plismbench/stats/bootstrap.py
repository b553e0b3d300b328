"""Hierarchical bootstrap over stainings and scanners, fully vectorised.

Slide pairs are not independent: the 4,095 PLISM pairs share 91 slides, which share 13
stainings and 7 scanners. A resample draws stainings and scanners with replacement; a
slide is drawn as often as its staining times its scanner; a pair of distinct slides is
drawn as often as the product of its slides' counts. Each resample is thus a row of
integer *multiplicities* over the observed pairs, and a statistic over the resampled
pairs is a weighted statistic over the observed ones. All resamples are one
``(n_boot, n_pairs)`` matrix; quantiles of all resamples come from one sort, one
cumulative sum and a few comparisons (no loop over resamples or pairs).

Weighted quantiles equal NumPy's default (linear) ``np.quantile`` of the pairs repeated
by their multiplicities, so a resample of weight one everywhere gives the plain median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plismbench.stats.design import Design

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


def hierarchical_weights(design: Design, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicity of every pair when stainings and scanners are resampled."""
    rng = np.random.default_rng(seed)
    stain = unit_counts(len(design.stainings), n_boot, rng)
    scan = unit_counts(len(design.scanners), n_boot, rng)
    slide = stain[:, design.slide_staining] * scan[:, design.slide_scanner]
    return slide[:, design.pair_a] * slide[:, design.pair_b]


def pair_weights(n_pairs: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_pairs) multiplicities of the naive bootstrap that resamples pairs."""
    return unit_counts(n_pairs, n_boot, np.random.default_rng(seed))


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(n_boot, len(qs)) linear quantiles of ``values`` repeated by each row of ``weights``.

    NaN where a row's weights sum to zero. ``values``: (n,); ``weights``: (n_boot, n) of
    non-negative integers.
    """
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
        # The value at expanded position i is v[number of cumulative weights <= i].
        v_lo = v[(cum <= lo[:, None]).sum(axis=1)]
        v_hi = v[(cum <= hi[:, None]).sum(axis=1)]
        out[ok, j] = v_lo + (h - lo) * (v_hi - v_lo)
    return out


def jackknife_weights(units: np.ndarray, n_units: int, design: Design) -> np.ndarray:
    """(n_units, n_pairs) pair weights with one unit left out per row (0 or 1)."""
    slide = (np.arange(n_units)[:, None] != units[None, :]).astype(np.int64)
    return slide[:, design.pair_a] * slide[:, design.pair_b]


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
            self.weights = pair_weights(design.n_pairs, n_boot, seed)
            self.n_jack = (0, 0)
        else:
            s, c = len(design.stainings), len(design.scanners)
            self.weights = np.vstack(
                [
                    hierarchical_weights(design, n_boot, seed),
                    jackknife_weights(design.slide_staining, s, design),
                    jackknife_weights(design.slide_scanner, c, design),
                ]
            )
            self.n_jack = (s, c)

    def quantiles(self, values: np.ndarray, pair_type: str, qs: Sequence[float]) -> np.ndarray:
        """(n_replicates, len(qs)) replicates of quantiles of ``values`` over one pair type."""
        mask = self.design.mask(pair_type) & np.isfinite(values)
        return weighted_quantiles(values[mask], self.weights[:, mask], qs)

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
        from scipy import stats

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
        factor = stats.t.ppf(1 - alpha, df) * np.sqrt(var) / (stats.norm.ppf(1 - alpha) * sd)
        return max(1.0, float(factor))

    def ci(self, estimate: float, reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
        """Percentile interval of the bootstrap, widened around ``estimate`` for few units."""
        lo, hi = percentile_ci(self.boot(reps), level)
        if not (np.isfinite(estimate) and np.isfinite(lo)):
            return lo, hi
        f = self.widening(estimate, reps, level)
        return estimate + f * (lo - estimate), estimate + f * (hi - estimate)

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
