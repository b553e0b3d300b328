"""Geometry of the feature cloud: spread over dimensions, anisotropy, centred cosine.

All rows are L2-normalised, so a dot product is a cosine and every mean cosine below is
exact, in closed form from the sums in :class:`~plismbench.analysis.variance.Moments`
(no sampled pairs):

* anisotropy: mean cosine over all pairs of distinct tiles, ``(||g||^2 - N) / (N (N-1))``;
* matched cosine: mean cosine of the same location in two different slides, overall and
  per pair type (cross-scanner, cross-staining, cross-scanner-cross-staining);
* random-pair cosine: mean cosine of two different locations in two different slides;
* centred cosine: matched minus random-pair cosine (what a high raw cosine hides).

:class:`Spectrum` accumulates the scatter matrix (analyze feeds it the sampled tiles) for
the effective rank (``exp`` of the
entropy of the normalised singular values of the centred features) and the participation
ratio ``(sum lambda)^2 / sum lambda^2`` of the covariance eigenvalues.
"""

from __future__ import annotations

import numpy as np

from plismbench.analysis.variance import Moments, _sq


class Spectrum:
    """Streaming sum and scatter matrix, in float64 around a shift (near-centred).

    The first batch's mean is the shift: every later row is accumulated as
    ``x - shift`` in float64, so the scatter is formed on (nearly) centred values and an
    anisotropic cloud (mean cosine near 1) keeps its small eigenvalues. Rows go through
    in blocks of ``block`` (the float64 copy of one block bounds the extra memory).
    """

    def __init__(self, dim: int, block: int = 4096) -> None:
        self.n = 0
        self.block = block
        self.shift: np.ndarray | None = None
        self.sum = np.zeros(dim, np.float64)
        self.scatter = np.zeros((dim, dim), np.float64)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if self.shift is None:
            self.shift = x.mean(axis=0, dtype=np.float64)
        for start in range(0, x.shape[0], self.block):
            xb = np.asarray(x[start : start + self.block], dtype=np.float64) - self.shift
            self.n += xb.shape[0]
            self.sum += xb.sum(axis=0)
            self.scatter += xb.T @ xb

    def eigenvalues(self) -> np.ndarray:
        """Covariance eigenvalues (descending, clipped at 0)."""
        mean = self.sum / max(self.n, 1)  # of the shifted rows
        cov = (self.scatter - self.n * np.outer(mean, mean)) / max(self.n - 1, 1)
        return np.clip(np.linalg.eigvalsh((cov + cov.T) / 2)[::-1], 0.0, None)


def effective_rank(eigenvalues: np.ndarray) -> float:
    """``exp(H(p))`` with ``p = sigma / sum sigma`` and ``sigma = sqrt(lambda)``."""
    sigma = np.sqrt(np.clip(np.asarray(eigenvalues, np.float64), 0.0, None))
    if sigma.sum() <= 0:
        return 0.0
    p = sigma[sigma > 0] / sigma.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``(sum lambda)^2 / sum lambda^2`` (0 for a zero spectrum)."""
    lam = np.clip(np.asarray(eigenvalues, np.float64), 0.0, None)
    den = float((lam**2).sum())
    return float(lam.sum() ** 2 / den) if den > 0 else 0.0


def cosines(m: Moments) -> dict[str, float]:
    """Exact mean cosines of unit rows (see the module docstring)."""
    m.check_complete()
    n_loc, s, c = m.n_locations, m.design.n_stainings, m.design.n_scanners
    k = s * c
    n = n_loc * k
    t = float(m.sumsq.sum())
    grand = _sq(m.cell.sum(axis=(0, 1)))
    same_loc = _sq(m.loc) - t
    x_scan = sum(_sq(m.stain_loc[i]) for i in range(s)) - t
    x_stain = sum(_sq(m.scan_loc[j]) for j in range(c)) - t
    x_both = same_loc - x_scan - x_stain
    diff_slide = grand - _sq(m.cell)
    random = diff_slide - same_loc
    out = {
        "anisotropy": (grand - t) / (n * (n - 1)),
        "matched_cosine": same_loc / (n_loc * k * (k - 1)),
        "matched_cosine_cross_scanner": x_scan / (n_loc * s * c * (c - 1)),
        "matched_cosine_cross_staining": x_stain / (n_loc * c * s * (s - 1)),
        "matched_cosine_cross_both": x_both / (n_loc * s * c * (s - 1) * (c - 1)),
    }
    out["random_pair_cosine"] = random / (n * (n_loc - 1) * (k - 1)) if n_loc > 1 else float("nan")
    for key in [k_ for k_ in out if k_.startswith("matched_cosine")]:
        out[key.replace("matched", "centred")] = out[key] - out["random_pair_cosine"]
    return out


def geometry(m: Moments, spectrum: Spectrum) -> dict[str, float]:
    """Cosines plus effective rank and participation ratio."""
    lam = spectrum.eigenvalues()
    return {
        **cosines(m),
        "effective_rank": effective_rank(lam),
        "participation_ratio": participation_ratio(lam),
        "dim": float(len(lam)),
    }
