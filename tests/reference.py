"""Brute-force references for the metrics, written straight from the definitions.

Deliberately naive: float64, the explicit 2N candidate set, Python loops.
"""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rank(t_i2) = |{t in S1 ∪ S2, t != t_i1 : cos(t_i1, t) >= cos(t_i1, t_i2)}|."""

    def one_direction(own: np.ndarray, other: np.ndarray) -> np.ndarray:
        n = len(own)
        candidates = np.concatenate([own, other])  # S1 ∪ S2 as 2N rows
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            sims = candidates @ own[i]
            match = sims[n + i]
            keep = np.ones(2 * n, dtype=bool)
            keep[i] = False  # the query itself, by index
            out[i] = int(np.sum(sims[keep] >= match))
        return out

    ua, ub = unit(a), unit(b)
    return one_direction(ua, ub), one_direction(ub, ua)


def brute_top_k(a: np.ndarray, b: np.ndarray, k: int) -> tuple[float, float]:
    """Top-k by sorting: is the match among the k best, ties ordered against it?"""

    def one_direction(own: np.ndarray, other: np.ndarray) -> float:
        n = len(own)
        hits = 0
        for i in range(n):
            cands = [(float(own[i] @ own[j]), 0, j) for j in range(n) if j != i]
            cands += [(float(own[i] @ other[j]), 0 if j != i else 1, n + j) for j in range(n)]
            # descending similarity; among equal similarities the match comes last
            cands.sort(key=lambda c: (-c[0], c[1]))
            position = next(p for p, c in enumerate(cands) if c[2] == n + i)
            hits += position < k
        return hits / n

    ua, ub = unit(a), unit(b)
    return one_direction(ua, ub), one_direction(ub, ua)


def sign_features(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    """±1 features with d a power of 4: norms and every cosine are exact in float32, so
    ties are real ties for any summation order."""
    return rng.choice([-1.0, 1.0], size=(n, d))


def holm_oracle(p: np.ndarray) -> np.ndarray:
    """Holm by its definition: the i-th smallest p gets max over j <= i of (m - j) p_(j)."""
    m = len(p)
    order = np.argsort(p)
    out = np.empty(m)
    for i, idx in enumerate(order):
        out[idx] = min(1.0, max((m - j) * p[order[j]] for j in range(i + 1)))
    return out
