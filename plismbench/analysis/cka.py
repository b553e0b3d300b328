"""Comparing two models on the same tiles: linear CKA and principal angles.

Linear CKA (centred kernel alignment) of features ``X`` (n, p) and ``Y`` (n, q) of the
same rows is ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred
``Xc, Yc``: 1 when one is a rotation and scaling of the other, near 0 when unrelated.

The two models live in different spaces, so their nuisance subspaces are compared where
both act: on the tiles. A model's staining (or scanner) subspace is the span, in R^n, of
the tiles' coordinates on the model's centred class means (``Xc M^T``, rank up to
classes - 1). Principal angles between the two spans (``scipy.linalg.subspace_angles``)
near 0 degrees mean that both models order the tiles by staining along the same
directions; near 90 degrees, differently.
"""

from __future__ import annotations

import numpy as np


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two feature matrices with the same rows (NaN if one is constant)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"row counts differ: {x.shape[0]} vs {y.shape[0]}")
    xc, yc = _centre(x), _centre(y)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    den = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(cross / den) if den > 0 else float("nan")


def class_mean_scores(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n, classes) coordinates of the centred rows on the centred class means."""
    xc = _centre(x)
    classes = np.unique(labels)
    means = np.stack([xc[labels == c].mean(axis=0) for c in classes])
    return xc @ means.T


def principal_angles(x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the two models' class-mean subspaces."""
    from scipy.linalg import subspace_angles

    a, b = class_mean_scores(x, labels), class_mean_scores(y, labels)
    return np.sort(np.degrees(subspace_angles(a, b)))
