"""Exact ranks against the brute-force definition."""

from __future__ import annotations

import numpy as np
import pytest
from reference import brute_ranks, brute_top_k, sign_features

from plismbench.errors import InputError
from plismbench.metrics import pair_ranks, summarise_ranks
from plismbench.metrics.backend import get_backend
from plismbench.metrics.cpu import NumpyBackend
from plismbench.metrics.cuda import TorchBackend
from plismbench.metrics.dense import count_at_thresholds

BACKENDS = ["cpu", "torch-cpu"]


def _random_pair(seed: int, n: int = 120, d: int = 24, noise: float = 0.8):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    return a, a + noise * rng.standard_normal((n, d))


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_features_match_brute_force(device: str, seed: int) -> None:
    a, b = _random_pair(seed)
    ab, ba = pair_ranks(a, b, device=device)
    ref_ab, ref_ba = brute_ranks(a, b)
    np.testing.assert_array_equal(ab, ref_ab)
    np.testing.assert_array_equal(ba, ref_ba)
    assert ab.min() >= 1 and ab.max() > 1  # not trivially all ones


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_ties_count_against(device: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = sign_features(rng, 80)
    b = a.copy()
    flip = rng.random(a.shape) < 0.2
    b[flip] *= -1
    a[5] = a[3]  # an exact duplicate inside S1
    b[7] = b[11]  # ...and inside S2
    ab, ba = pair_ranks(a, b, device=device)
    ref_ab, ref_ba = brute_ranks(a, b)
    np.testing.assert_array_equal(ab, ref_ab)
    np.testing.assert_array_equal(ba, ref_ba)
    # ties are plentiful with 16 sign dims: make sure the test exercises them
    sims = (a / 4) @ (b / 4).T
    assert np.sum(sims == np.diag(sims)[:, None]) > 2 * len(a)


def test_tie_with_the_match_counts_against_exactly() -> None:
    # a0=(1,0), a1=(0,1); b0=(1,1), b1=(1,-1). Worked by hand:
    # a0->b0: cos(a0,b0)=cos(a0,b1)=1/sqrt2 (tie counts), cos(a0,a1)=0  -> rank 2
    # a1->b1: cos(a1,b1)=-1/sqrt2; a0 (0) and b0 (+1/sqrt2) beat it    -> rank 3
    # b0->a0: cos(b0,a0)=cos(b0,a1)=1/sqrt2 (tie), cos(b0,b1)=0        -> rank 2
    # b1->a1: -1/sqrt2; b0 (0) and a0 (+1/sqrt2) beat it                -> rank 3
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, -1.0]])
    ab, ba = pair_ranks(a, b)
    np.testing.assert_array_equal(ab, [2, 3])
    np.testing.assert_array_equal(ba, [2, 3])
    np.testing.assert_array_equal(ab, brute_ranks(a, b)[0])


@pytest.mark.parametrize("device", BACKENDS)
def test_identical_slides_rank_one(device: str) -> None:
    a, _ = _random_pair(3, n=200, d=64)
    ab, ba = pair_ranks(a, a.copy(), device=device)
    assert (ab == 1).all() and (ba == 1).all()
    summary = summarise_ranks(ab, ba)
    assert summary.top_k[1] == 1.0 and summary.mrr == 1.0 and summary.median_rank == 1.0


def _small_blocks(kind: str):
    backend = NumpyBackend() if kind == "cpu" else TorchBackend("cpu")
    backend.gemm_rows, backend.block_rows = 8, 16  # many blocks, a ragged last one
    return backend


@pytest.mark.parametrize("kind", ["cpu", "torch-cpu"])
def test_identical_slides_with_duplicate_tiles(kind: str) -> None:
    # Identical slides where tile 1 duplicates tile 0 and tile 30 duplicates tile 2, in
    # another GEMM block. Sign features make every similarity exact, so each duplicate in
    # S1 and in S2 ties with the match: rank 3. The other tiles rank 1 unless they tie by
    # chance, which the brute force settles.
    a = sign_features(np.random.default_rng(4), 50, d=64)
    a[1] = a[0]
    a[30] = a[2]
    want = brute_ranks(a, a.copy())
    assert (want[0][[0, 1, 2, 30]] == 3).all()
    default = get_backend("cpu") if kind == "cpu" else TorchBackend("cpu")
    for backend in (default, _small_blocks(kind)):
        ab, ba = pair_ranks(a, a.copy(), backend=backend)
        np.testing.assert_array_equal(ab, want[0])
        np.testing.assert_array_equal(ba, want[1])


def test_directions_swap() -> None:
    a, b = _random_pair(5)
    ab, ba = pair_ranks(a, b)
    ba2, ab2 = pair_ranks(b, a)
    np.testing.assert_array_equal(ab, ab2)
    np.testing.assert_array_equal(ba, ba2)
    assert not np.array_equal(ab, ba)  # the two directions genuinely differ here


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 50])
def test_top_k_every_k_against_sorting_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    a = sign_features(rng, 40)
    b = a * np.where(rng.random(a.shape) < 0.25, -1.0, 1.0)
    ab, ba = pair_ranks(a, b)
    got = summarise_ranks(ab, ba, top_k=[k])
    ref_ab, ref_ba = brute_top_k(a, b, k)
    assert got.top_k_a_to_b[k] == ref_ab
    assert got.top_k_b_to_a[k] == ref_ba
    assert got.top_k[k] == (ref_ab + ref_ba) / 2


@pytest.mark.parametrize("block_rows", [1, 7, 64])
def test_blocked_intra_counts_do_not_depend_on_block_size(block_rows: int) -> None:
    a, b = _random_pair(6, n=90)
    backend = NumpyBackend()
    backend.block_rows = block_rows
    ab, ba = pair_ranks(a, b, backend=backend)
    ref = pair_ranks(a, b, backend=TorchBackend("cpu"))
    np.testing.assert_array_equal(ab, ref[0])
    np.testing.assert_array_equal(ba, ref[1])


def test_count_at_thresholds_brute_force() -> None:
    import torch

    rng = np.random.default_rng(0)
    sims = rng.integers(-5, 5, size=(9, 40)).astype(np.float32)
    thr = rng.integers(-6, 6, size=(9, 7)).astype(np.float32)  # many ties and duplicates
    got = count_at_thresholds(torch.from_numpy(sims), torch.from_numpy(thr)).numpy()
    want = (sims[:, None, :] >= thr[:, :, None]).sum(axis=2)
    np.testing.assert_array_equal(got, want)


def test_large_norms_do_not_overflow() -> None:
    # The reference normalises in float16 and overflows above norm ~256.
    a, b = _random_pair(7, n=60, d=16)
    ab, ba = pair_ranks(a * 1e4, b * 3e3)
    np.testing.assert_array_equal(ab, brute_ranks(a, b)[0])
    np.testing.assert_array_equal(ba, brute_ranks(a, b)[1])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_names_the_row(bad: float) -> None:
    a, b = _random_pair(8, n=10)
    a[4, 2] = bad
    with pytest.raises(InputError, match="row 4 has non-finite"):
        pair_ranks(a, b)


def test_zero_norm_names_the_row() -> None:
    a, b = _random_pair(9, n=10)
    b[6] = 0
    with pytest.raises(InputError, match="row 6 is all zeros"):
        pair_ranks(a, b)
