"""Row normalisation and matched-tile cosine similarity."""

from __future__ import annotations

import numpy as np

from plismbench.errors import InputError
from plismbench.metrics.exact import scale_rows

#: Rows per chunk (keeps a chunk's float64 copy in cache).
_CHUNK = 256


def normalise(
    features: np.ndarray,
    *,
    what: str = "features",
    row_ids: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """L2-normalise rows in float64, return float32.

    float16/float32 rows are squared exactly in float64, where no norm can overflow or
    underflow. Wider rows are first scaled by a power of two (exact) so that their
    largest |value| lies in [0.5, 1): norms near 1e200 do not overflow, near 1e-170 do not
    underflow. Raises `InputError` naming ``what`` and the first bad row
    (``row_ids[r]`` when the rows were taken from a larger file) for non-finite values or
    an all-zero row. ``out``: an optional float32 array of the same shape to fill.
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (tiles, dims), got shape {x.shape}")
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    if x.dtype in (np.float16, np.float32):
        return _normalise_narrow(x, what, row_ids, out)
    x = np.asarray(x, dtype=np.float64)
    _check(np.isfinite(x).all(axis=1), np.any(x, axis=1), what, row_ids)
    x = scale_rows(x)
    out[...] = x / np.linalg.norm(x, axis=1)[:, None]
    return out


def _normalise_narrow(
    x: np.ndarray, what: str, row_ids: np.ndarray | None, out: np.ndarray
) -> np.ndarray:
    """float16/32 rows: exact float64 squares, in cache-sized chunks (one read for the
    checks, one for the division)."""
    sq = np.empty(len(x), dtype=np.float64)
    for c0 in range(0, len(x), _CHUNK):
        blk = x[c0 : c0 + _CHUNK]
        sq[c0 : c0 + _CHUNK] = np.einsum("ij,ij->i", blk, blk, dtype=np.float64)
    finite = np.isfinite(sq)  # a non-finite value makes its row's sum inf or NaN
    _check(finite, ~finite | (sq > 0), what, row_ids)  # squares of nonzero values are > 0
    norm = np.sqrt(sq)
    for c0 in range(0, len(x), _CHUNK):
        blk = x[c0 : c0 + _CHUNK].astype(np.float64)
        blk /= norm[c0 : c0 + _CHUNK, None]
        out[c0 : c0 + _CHUNK] = blk
    return out


def _check(finite: np.ndarray, nonzero: np.ndarray, what: str, row_ids: np.ndarray | None) -> None:
    if not finite.all():
        row = _row(int(np.flatnonzero(~finite)[0]), row_ids)
        raise InputError(f"{what}: row {row} has non-finite values (NaN or inf)")
    if not nonzero.all():
        row = _row(int(np.flatnonzero(~nonzero)[0]), row_ids)
        raise InputError(
            f"{what}: row {row} is all zeros (a zero norm); its cosine similarity is undefined"
        )


def _row(r: int, row_ids: np.ndarray | None) -> int:
    return r if row_ids is None else int(row_ids[r])


def matched_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``mean_i cos(a_i, b_i)`` of two raw (un-normalised) feature matrices, in float64."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    num = np.einsum("ij,ij->i", x, y)
    return float(np.mean(num / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))))
