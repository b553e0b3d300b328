"""normalise: float32 rows against a float64 oracle, extreme norms, bad rows named."""

from __future__ import annotations

import numpy as np
import pytest

from plismbench.errors import InputError
from plismbench.metrics.cosine import normalise


def _oracle(x: np.ndarray) -> np.ndarray:
    """x / ||x|| from exact float64 squares (float32 values square exactly), rounded."""
    x64 = np.asarray(x, dtype=np.float64)
    return (x64 / np.sqrt(np.sum(x64 * x64, axis=1))[:, None]).astype(np.float32)


@pytest.mark.parametrize("rows", [700, 257, 513])  # a last chunk of 188 rows, or of one
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_narrow_rows_match_the_float64_oracle(dtype, rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 33)).astype(dtype)  # several chunks, a ragged last one
    got = normalise(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _oracle(x), rtol=2**-23, atol=0)
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1, rtol=1e-6)


def test_float32_extremes_neither_overflow_nor_underflow() -> None:
    x = np.array([[3e38, -3e38, 1e38], [1e-45, 0, -3e-45], [1e-40, 2e-40, 0]], dtype=np.float32)
    got = normalise(x)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(got, _oracle(x), rtol=2**-23)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_rows_are_named(dtype) -> None:
    x = np.ones((600, 4), dtype=dtype)
    x[300] = 0
    with pytest.raises(InputError, match="row 300 is all zeros"):
        normalise(x)
    x[520, 2] = np.nan  # non-finite is reported before zero rows, wherever they are
    with pytest.raises(InputError, match="row 520 has non-finite"):
        normalise(x)
    x[520, 2] = np.inf
    with pytest.raises(InputError, match="row 7 has non-finite"):
        normalise(x, row_ids=np.arange(600) - 513)
