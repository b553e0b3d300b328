"""Deterministic, nested tile subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from plismbench.errors import InputError
from plismbench.evaluate.subset import default_n_tiles, resolve, select_tiles


def test_default_is_half_of_full_plism_slides_else_all() -> None:
    assert default_n_tiles(16_278) == 8_139
    assert default_n_tiles(500) == 500
    idx, desc = resolve(16_278)
    assert idx.size == 8_139 and desc == "seed:0"
    assert resolve(500)[0].size == 500


def test_subsets_are_deterministic_sorted_and_nested() -> None:
    sizes = [460, 2_713, 5_426, 8_139]
    subsets = [select_tiles(16_278, n) for n in sizes]
    for n, s in zip(sizes, subsets, strict=True):
        assert s.size == n and np.all(np.diff(s) > 0)
        np.testing.assert_array_equal(s, select_tiles(16_278, n))
    for small, big in itertools.pairwise(subsets):
        assert np.isin(small, big).all()
    np.testing.assert_array_equal(select_tiles(16_278, 16_278), np.arange(16_278))


def test_all_and_errors() -> None:
    assert resolve(30, "all")[0].size == 30
    assert resolve(30, "ALL")[1] == "all"
    with pytest.raises(InputError, match="exceeds"):
        resolve(30, 31)
    with pytest.raises(InputError, match="at least 1"):
        resolve(30, 0)
