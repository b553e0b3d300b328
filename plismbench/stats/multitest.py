"""Multiple-testing corrections: Holm and Benjamini-Hochberg (statsmodels' values).

statsmodels' ``multipletests`` runs a full garbage collection on every call (about half
a second each), too slow for one call per metric and pair type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _adjusted(p_values: np.ndarray, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``step`` to the finite p-values sorted ascending; NaN entries stay NaN and do
    not count as tests; results are capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(1.0, step(p[order]))
    return out


def _holm_step(p: np.ndarray) -> np.ndarray:
    m = len(p)
    return np.maximum.accumulate((m - np.arange(m)) * p)


def _bh_step(p: np.ndarray) -> np.ndarray:
    m = len(p)
    return np.minimum.accumulate((p * m / np.arange(1, m + 1))[::-1])[::-1]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries stay NaN and do not count as tests."""
    return _adjusted(p_values, _holm_step)


def bh(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); NaN entries stay NaN."""
    return _adjusted(p_values, _bh_step)


#: The corrections ``compare --correction`` offers.
CORRECTIONS = {"holm": holm, "bh": bh}


def adjust(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """``holm`` (family-wise error) or ``bh`` (false discovery rate) adjusted p-values."""
    if method not in CORRECTIONS:
        from plismbench.errors import InputError

        raise InputError(f"--correction {method}: unknown (choose {' or '.join(CORRECTIONS)})")
    return CORRECTIONS[method](p_values)
