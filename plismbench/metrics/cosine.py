"""Row normalisation and matched-tile cosine similarity."""

from __future__ import annotations

import numpy as np

from plismbench.errors import InputError
from plismbench.metrics.exact import scale_rows


def normalise(
    features: np.ndarray, *, what: str = "features", row_ids: np.ndarray | None = None
) -> np.ndarray:
    """L2-normalise rows in float64, return float32.

    Each row is first scaled by a power of two (exact) so that its largest |value| lies
    in [0.5, 1): norms of rows near 1e200 do not overflow, near 1e-170 do not underflow.
    Raises :class:`InputError` naming ``what`` and the first bad row (``row_ids[r]`` when
    the rows were taken from a larger file) for non-finite values or an all-zero row.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (tiles, dims), got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = _row(int(np.flatnonzero(~finite)[0]), row_ids)
        raise InputError(f"{what}: row {row} has non-finite values (NaN or inf)")
    zero = ~x.any(axis=1)
    if zero.any():
        row = _row(int(np.flatnonzero(zero)[0]), row_ids)
        raise InputError(
            f"{what}: row {row} is all zeros (a zero norm); its cosine similarity is undefined"
        )
    x = scale_rows(x)
    return (x / np.linalg.norm(x, axis=1)[:, None]).astype(np.float32)


def _row(r: int, row_ids: np.ndarray | None) -> int:
    return r if row_ids is None else int(row_ids[r])


def matched_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``mean_i cos(a_i, b_i)`` of two raw (un-normalised) feature matrices, in float64."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    num = np.einsum("ij,ij->i", x, y)
    return float(np.mean(num / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))))
