"""Exact decisions of near ties: is cos(q, t) >= cos(q, m)?

The float32 GEMM puts every similarity within a proven distance of the true cosine
(`gemm_band()`). Only the candidates inside that band around a threshold come
here, as raw feature rows (query q, candidate t, match m). They are decided

1. in float64, with a rigorous error bound, which settles nearly all of them;
2. exactly otherwise (true ties: duplicated tiles, integer features, constant slides):
   each row is an integer vector times a power of two, so with ``a = Q.T``,
   ``c = Q.M``, ``B = T.T``, ``D = M.M`` the test is ``sign(a) a^2 D >= sign(c) c^2 B``,
   computed in exact integer arithmetic.

Raw rows of float16, float32 or float64 convert to float64 exactly, so the answer is
the one over the real numbers.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

U32 = 2.0**-24
U64 = 2.0**-53
#: Integer-valued float64 arithmetic is exact below this.
EXACT_INT = 2.0**52


def gemm_band(dim: int) -> float:
    """Bound on |float32 GEMM similarity of normalised rows - true cosine| + threshold error.

    Normalisation to float32 moves each cosine by at most ~2u, a float32 dot product of
    length d errs by at most ~d u (u = 2^-24, any summation order, FMA or not), and the
    threshold (float32 products summed in float64) by ~3u: (d + 8) u with a 25% margin.
    """
    return 1.25 * (dim + 8) * U32


def float64_band(dim: int) -> float:
    """The same bound when the similarity is recomputed in float64 from the normalised
    float32 rows (exact products): ~2u for normalisation, ~3u for the threshold."""
    return 1.25 * (6 * U32 + (3 * dim + 16) * U64) + 1e-30


def split_band(sims64: np.ndarray, match64: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(surely >=, undecided)`` masks for float64 recomputed band members."""
    diff = sims64 - match64
    tol = float64_band(dim)
    return diff > tol, np.abs(diff) <= tol


def thresholds32(match: np.ndarray, band: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(lo, hi)`` around float64 thresholds, rounded outwards."""
    lo = np.nextafter((match - band).astype(np.float32), np.float32(-np.inf))
    hi = np.nextafter((match + band).astype(np.float32), np.float32(np.inf))
    return lo, hi


def scale_rows(x: np.ndarray) -> np.ndarray:
    """Each row times a power of two that brings its largest |value| into [0.5, 1).

    Exact (barring values 2^1000 times smaller than the row's largest), so norms neither
    overflow (1e200) nor underflow (1e-170). All-zero rows stay zero.
    """
    x = np.asarray(x, dtype=np.float64)
    _, e = np.frexp(np.abs(x).max(axis=1, initial=0.0))
    return np.ldexp(x, -e[:, None])


def _rowdot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, y)


def at_least_as_similar(q: np.ndarray, t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per row r: is cos(q_r, t_r) >= cos(q_r, m_r)? Exact. Rows must be finite, non-zero."""
    q, t, m = (np.asarray(a, dtype=np.float64) for a in (q, t, m))
    if len(q) == 0:
        return np.zeros(0, dtype=bool)
    qs, ts, ms = scale_rows(q), scale_rows(t), scale_rows(m)
    vt = _rowdot(qs, ts) / np.sqrt(_rowdot(ts, ts))
    vm = _rowdot(qs, ms) / np.sqrt(_rowdot(ms, ms))
    # each of vt, vm is within (1.5 d + 4) u |qs| of |qs| cos(...): twice that, with margin
    tol = (4 * q.shape[1] + 16) * U64 * np.sqrt(_rowdot(qs, qs)) + 1e-290
    diff = vt - vm
    out = diff >= 0
    unsure = np.flatnonzero(np.abs(diff) <= tol)
    if unsure.size:
        out[unsure] = _exact(q[unsure], t[unsure], m[unsure])
    return out


def _integer_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``x = V * 2^E`` with V integer-valued; returns V (float64) and whether
    V is exact in float64 (the row spans at most 53 bits)."""
    frac, exp = np.frexp(x)
    mant = np.ldexp(frac, 53).astype(np.int64)
    nz = mant != 0
    low = np.where(nz, mant & -mant, 1)  # lowest set bit
    lsb = np.where(nz, exp - 53 + np.frexp(low.astype(np.float64))[1] - 1, np.iinfo(np.int32).max)
    e_min = lsb.min(axis=1)
    top = np.where(nz, exp, np.iinfo(np.int32).min).max(axis=1)
    ok = top - e_min <= 53
    shift = np.where(ok, -e_min, 0)
    return np.ldexp(x, shift[:, None]), ok


def _exact(q: np.ndarray, t: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = np.ones(len(q), dtype=bool)
    # t equal to m ties; t equal to q has cosine 1, the maximum
    rest = np.flatnonzero(~((t == m).all(axis=1) | (t == q).all(axis=1)))
    if rest.size == 0:
        return out
    q, t, m = q[rest], t[rest], m[rest]
    (qv, qok), (tv, tok), (mv, mok) = _integer_rows(q), _integer_rows(t), _integer_rows(m)
    aq, at, am = np.abs(qv), np.abs(tv), np.abs(mv)
    fits = qok & tok & mok
    for x, y in ((aq, at), (aq, am), (at, at), (am, am)):
        fits &= _rowdot(x, y) <= EXACT_INT
    res = np.ones(len(rest), dtype=bool)
    fast = np.flatnonzero(fits)
    a, c = _rowdot(qv[fast], tv[fast]), _rowdot(qv[fast], mv[fast])
    b, d = _rowdot(tv[fast], tv[fast]), _rowdot(mv[fast], mv[fast])
    lhs, rhs = np.sign(a) * a * a * d, np.sign(c) * c * c * b
    clear = np.abs(lhs - rhs) > 8 * U64 * np.maximum(np.abs(lhs), np.abs(rhs))
    res[fast[clear]] = lhs[clear] > rhs[clear]
    for i in np.flatnonzero(~clear):  # integers exact in float64; products in Python
        res[fast[i]] = _compare(int(a[i]), int(c[i]), int(b[i]), int(d[i]))
    for k in np.flatnonzero(~fits):  # wide rows: Python integers throughout
        qi, ti, mi = (_python_ints(r[k]) for r in (q, t, m))
        res[k] = _compare(_dot(qi, ti), _dot(qi, mi), _dot(ti, ti), _dot(mi, mi))
    out[rest] = res
    return out


def _compare(a: int, c: int, b: int, d: int) -> bool:
    """``a / sqrt(b) >= c / sqrt(d)`` for integers, b and d > 0."""
    lhs = a * a * d * (1 if a >= 0 else -1)
    rhs = c * c * b * (1 if c >= 0 else -1)
    return lhs >= rhs


def _python_ints(row: np.ndarray) -> list[int]:
    """The row as integers times a common power of two (exact, any magnitudes)."""
    fr = [Fraction(float(v)) for v in row]
    den = max(f.denominator for f in fr)
    return [f.numerator * (den // f.denominator) for f in fr]


def _dot(x: list[int], y: list[int]) -> int:
    return sum(i * j for i, j in zip(x, y, strict=True))
