"""Deterministic, nested tile subsets."""

from __future__ import annotations

import hashlib
import io
import itertools

import numpy as np
import pytest

from plismbench.errors import InputError
from plismbench.evaluation.subset import default_n_tiles, resolve, select_tiles


def test_default_is_half_of_full_plism_slides_else_all() -> None:
    assert default_n_tiles(16_278) == 8_139
    assert default_n_tiles(500) == 500
    idx, desc = resolve(16_278)
    assert idx.size == 8_139 and desc == "reference-8139"
    assert resolve(500)[0].size == 500 and resolve(500)[1] == "all-500"


# blake2b (digest_size 16) of the shipped owkin/plism-benchmark assets, unchanged
REFERENCE_DIGESTS = {
    460: "79d36f4285cead834644be37b1016a36",
    2713: "712afa70bdb1c1870e07a0e49e8e4a25",
    5426: "d473aa1fdef5f47286e3d3ca5b6365a9",
    8139: "fa425c54a326c46c80fba6bb5fc6da99",
}


@pytest.mark.parametrize("n", [460, 2_713, 5_426, 8_139])
def test_full_plism_slides_use_the_reference_rows(n: int) -> None:
    from importlib.resources import files

    raw = files("plismbench.assets").joinpath(f"reference_subsets/tiles_subset_{n}.npy")
    data = raw.read_bytes()
    assert hashlib.blake2b(data, digest_size=16).hexdigest() == REFERENCE_DIGESTS[n]
    shipped = np.load(io.BytesIO(data))
    assert shipped.size == n and np.unique(shipped).size == n
    idx, desc = resolve(16_278, n)
    assert desc == f"reference-{n}"
    np.testing.assert_array_equal(idx, np.sort(shipped))
    assert not np.array_equal(idx, select_tiles(16_278, n))  # not the deterministic subset
    # other counts, and other slide sizes, keep the deterministic subset
    other, desc = resolve(16_277, n)
    assert desc == f"deterministic-{n}"
    np.testing.assert_array_equal(other, select_tiles(16_277, n))
    assert resolve(16_278, 1000)[1] == "deterministic-1000"


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
    assert resolve(30, "ALL")[1] == "all-30"
    with pytest.raises(InputError, match="exceeds"):
        resolve(30, 31)
    with pytest.raises(InputError, match="at least 1"):
        resolve(30, 0)
