"""Multiple-testing corrections: Holm and Benjamini-Hochberg (statsmodels' values).

statsmodels' ``multipletests`` runs a full garbage collection on every call (about half
a second each), too slow for one call per metric and pair type.
"""

from __future__ import annotations

import numpy as np


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bh(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); NaN entries stay NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


#: The corrections ``compare --correction`` offers.
CORRECTIONS = {"holm": holm, "bh": bh}


def adjust(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """``holm`` (family-wise error) or ``bh`` (false discovery rate) adjusted p-values."""
    if method not in CORRECTIONS:
        from plismbench.errors import InputError

        raise InputError(f"--correction {method}: unknown (choose {' or '.join(CORRECTIONS)})")
    return CORRECTIONS[method](p_values)
