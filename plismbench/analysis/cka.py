"""Comparing two models on the same tiles: CKA (debiased and biased) and principal angles.

**CKA.** Centred kernel alignment of two representations of the same ``n`` samples, with
linear kernels ``K = X X^T`` and ``L = Y Y^T``, is ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``.
The plug-in (biased) HSIC makes two *unrelated* high-dimensional matrices look similar:
for independent ``n x p`` Gaussians it is near ``p / (n + p)`` (0.77 at 460 x 1,536).
The default here is the unbiased HSIC estimator of Song et al. (2012), "debiased CKA"
(Nguyen et al. 2021): with ``K~``, ``L~`` the kernels with a zeroed diagonal,

    HSIC_u = [tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n-3)),

an unbiased U-statistic: unrelated models give values near 0 (of either sign), a rotated
and scaled copy exactly 1. The biased value is kept as ``cka_biased``.

**Samples are locations.** A tile location repeated over slides is not an independent
sample (both models see the same tissue repeated), so every scope's samples are its
*distinct* locations: in one slide, the location's feature row; in a group of slides (a
staining, a scanner, all slides), the concatenation of its rows over the group's slides,
whose linear kernel is the sum of the per-slide kernels.

**Null.** Shuffling the locations of one model against the other (``permutations``
times) gives CKA's distribution when the two models share nothing; ``cka_null`` is its
mean, ``cka_null_q95`` its 95th percentile, ``p_value`` the permutation p-value
``(1 + #{null >= observed}) / (1 + permutations)``, ``cka_minus_null`` the excess.

**Principal angles.** The two models live in different spaces, so their nuisance
subspaces are compared where both act: on the tiles. A model's staining (or scanner)
subspace is the span, in R^n, of the tiles' coordinates on its centred class means
(``Xc M^T``, rank up to classes - 1). Small angles show that *both models separate the
classes*; they do not show that the two models use "the same directions" in any shared
space (there is none). Two nulls sit beside them: random subspaces of the same dimension
(``null_random_deg``), and the reference with its tiles shuffled *within* each class
(``null_shuffled_deg``), i.e. a model with exactly the same class effect but otherwise
unrelated: angles at or above this null say nothing beyond "both separate the classes".
"""

from __future__ import annotations

import numpy as np

#: Permutations of the CKA null and draws of the angle nulls.
PERMUTATIONS = 200
ANGLE_DRAWS = 20


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def gram(x: np.ndarray) -> np.ndarray:
    """Linear kernel ``X X^T`` in float64."""
    x64 = np.asarray(x, dtype=np.float64)
    return x64 @ x64.T


def hsic_biased(k: np.ndarray, l_: np.ndarray) -> float:
    """Plug-in HSIC ``tr(K H L H) / (n - 1)^2`` (H the centring matrix)."""
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return float(np.sum((h @ k @ h) * l_) / (n - 1) ** 2)


def hsic_unbiased(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC of two kernels (needs ``n >= 4``)."""
    n = k.shape[0]
    if n < 4:
        raise ValueError(f"unbiased HSIC needs at least 4 samples, got {n}")
    kt, lt = _zero_diag(k), _zero_diag(l_)
    ks, ls = kt.sum(axis=0), lt.sum(axis=0)
    value = (
        float(np.sum(kt * lt))
        + float(ks.sum() * ls.sum()) / ((n - 1) * (n - 2))
        - 2.0 * float(ks @ ls) / (n - 2)
    )
    return value / (n * (n - 3))


def _zero_diag(k: np.ndarray) -> np.ndarray:
    out = np.array(k, dtype=np.float64, copy=True)
    np.fill_diagonal(out, 0.0)
    return out


def _ratio(num: float, a: float, b: float) -> float:
    den = a * b
    return float(num / np.sqrt(den)) if den > 0 else float("nan")


def cka_from_grams(k: np.ndarray, l_: np.ndarray, *, debiased: bool = True) -> float:
    """CKA of two kernels over the same samples (NaN if one has no variation)."""
    f = hsic_unbiased if debiased else hsic_biased
    return _ratio(f(k, l_), f(k, k), f(l_, l_))


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = True) -> float:
    """Linear CKA of two feature matrices with the same rows (debiased by default)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"row counts differ: {x.shape[0]} vs {y.shape[0]}")
    return cka_from_grams(gram(x), gram(y), debiased=debiased)


def cka_with_null(
    k: np.ndarray, l_: np.ndarray, *, permutations: int = PERMUTATIONS, seed: int = 0
) -> dict[str, float]:
    """Debiased and biased CKA of two kernels, and the debiased CKA's permutation null."""
    n = k.shape[0]
    kt, lt = _zero_diag(k), _zero_diag(l_)
    ks, ls = kt.sum(axis=0), lt.sum(axis=0)
    const = float(ks.sum() * ls.sum()) / ((n - 1) * (n - 2))
    scale = n * (n - 3)
    hk, hl = hsic_unbiased(k, k), hsic_unbiased(l_, l_)
    den = np.sqrt(hk * hl) if hk * hl > 0 else float("nan")

    def value(p: np.ndarray) -> float:
        # HSIC_u(K, P L P^T): only the trace and the row-sum product change.
        lp = lt[np.ix_(p, p)]
        return (float(np.sum(kt * lp)) + const - 2.0 * float(ks @ ls[p]) / (n - 2)) / scale / den

    observed = value(np.arange(n))
    rng = np.random.default_rng(seed)
    null = np.array([value(rng.permutation(n)) for _ in range(permutations)])
    mean = float(null.mean()) if permutations else float("nan")
    return {
        "cka": observed,
        "cka_biased": cka_from_grams(k, l_, debiased=False),
        "cka_null": mean,
        "cka_null_q95": float(np.quantile(null, 0.95)) if permutations else float("nan"),
        "cka_minus_null": observed - mean,
        "p_value": float((1 + np.sum(null >= observed)) / (1 + permutations)),
        "n_samples": n,
    }


def class_mean_scores(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n, classes) coordinates of the centred rows on the centred class means."""
    xc = _centre(x)
    classes = np.unique(labels)
    means = np.stack([xc[labels == c].mean(axis=0) for c in classes])
    return xc @ means.T


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import subspace_angles

    return np.sort(np.degrees(subspace_angles(a, b)))


def principal_angles(x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the two models' class-mean subspaces."""
    return _angles(class_mean_scores(x, labels), class_mean_scores(y, labels))


def angle_nulls(
    x: np.ndarray, y: np.ndarray, labels: np.ndarray, *, draws: int = ANGLE_DRAWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean angles (per index) to random subspaces, and to ``y`` shuffled within classes."""
    rng = np.random.default_rng(seed)
    a = class_mean_scores(x, labels)
    b = class_mean_scores(y, labels)
    rank = int(np.linalg.matrix_rank(b))
    n_angles = min(np.linalg.matrix_rank(a), rank)
    rand = np.zeros(n_angles)
    shuf = np.zeros(n_angles)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(draws):
        r = rng.standard_normal((a.shape[0], max(rank, 1)))
        rand += _angles(a, r)[:n_angles]
        order = np.arange(len(labels))
        for g in groups:
            order[g] = rng.permutation(g)
        shuf += _angles(a, class_mean_scores(np.asarray(y)[order], labels))[:n_angles]
    return rand / max(draws, 1), shuf / max(draws, 1)
