"""Pair batches: their size, atomic batch files and resume, stacked normalised features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from featurestore import plism_like, write_store

from plismbench.evaluation.cache import PairCache
from plismbench.evaluation.stages import BATCH_FLOP, MAX_PAIRS_PER_FILE, pairs_per_file
from plismbench.metrics.cosine import normalise
from plismbench.metrics.ranks import CrossCounts
from plismbench.store.features import FeatureStore


def test_pairs_per_file_rounds_down_between_one_and_the_cap() -> None:
    assert BATCH_FLOP == 2**34 and MAX_PAIRS_PER_FILE == 64
    assert pairs_per_file(1024, 8192) == 1  # exactly BATCH_FLOP per pair
    assert pairs_per_file(1024, 4096) == 2  # exactly half
    assert pairs_per_file(1024, 4095) == 2  # a little less than half: still 2, not 3
    assert pairs_per_file(1024, 8191) == 1
    assert pairs_per_file(460, 768) == 52  # 2^34 / (2 x 460^2 x 768) = 52.9
    assert pairs_per_file(16_278, 1536) == 1  # a pair costs more than a batch: still one
    assert pairs_per_file(10, 16) == MAX_PAIRS_PER_FILE
    assert pairs_per_file(0, 0) == MAX_PAIRS_PER_FILE


def _counts(rng: np.random.Generator, k: int, n: int = 5) -> list[CrossCounts]:
    return [CrossCounts(rng.random(n), rng.integers(0, 9, n), rng.integers(0, 9, n))
            for _ in range(k)]  # fmt: skip


def _same(got: list[CrossCounts], want: list[CrossCounts]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.match, w.match)
        np.testing.assert_array_equal(g.a_to_b, w.a_to_b)
        np.testing.assert_array_equal(g.b_to_a, w.b_to_a)


def test_batches_round_trip_under_distinct_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cache = PairCache(tmp_path / "c", "key")
    saved = {b: _counts(rng, k) for b, k in ((0, 3), (100, 1), (1234, 2), (99_999, 4))}
    for b, counts in saved.items():
        cache.save_batch(b, counts)
    for b, counts in saved.items():
        assert cache.has_batch(b)
        _same(cache.load_batch(b), counts)
    assert not cache.has_batch(1)


def test_a_batch_killed_mid_write_is_not_finished(tmp_path: Path, monkeypatch) -> None:
    cache = PairCache(tmp_path / "c", "key")
    counts = _counts(np.random.default_rng(1), 3)
    real = np.save
    final = tmp_path / "c" / "pairs" / "00000.npy"
    seen: list[bool] = []

    def dies_half_way(fh, array, allow_pickle=False) -> None:
        fh.write(b"\x93NUMPY partial")
        fh.flush()
        seen.append(final.exists())  # a SIGKILL now must not leave a batch file
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        cache.save_batch(0, counts)
    monkeypatch.setattr(np, "save", real)
    assert seen == [False]
    assert not cache.has_batch(0)
    assert not list((tmp_path / "c" / "pairs").iterdir())  # no partial file left behind
    # a temporary file left by a killed process is not a finished batch either
    (tmp_path / "c" / "pairs" / ".00000.npy.4242.17.tmp").write_bytes(b"\x93NUMPY partial")
    reopened = PairCache(tmp_path / "c", "key")  # same key: resumed, not wiped
    assert not reopened.has_batch(0)
    reopened.save_batch(0, counts)
    assert reopened.has_batch(0)
    _same(reopened.load_batch(0), counts)


@pytest.mark.parametrize("order", ["identity", "permutation", "subset"])
def test_stacked_normalised_rows_follow_the_requested_order(tmp_path: Path, order: str) -> None:
    rng = np.random.default_rng(2)
    slides = plism_like(rng, n=300, d=8)
    write_store(tmp_path / "f", "m", slides)
    store = FeatureStore.open(tmp_path / "f", "m", allow_missing=True)
    rows = {"identity": np.arange(300), "permutation": rng.permutation(300),
            "subset": np.sort(rng.choice(300, 257, replace=False))}[order]  # fmt: skip
    n = len(rows)
    out = np.full((len(store.slides) * n, 8), np.nan, dtype=np.float32)
    views = list(store.iter_normalised(rows, threads=2, out=out))
    for s, (slide, view) in enumerate(zip(store.slides, views, strict=True)):
        raw = np.load(slide.path)[:, 3:].astype(np.float32)
        want = normalise(raw[rows])
        np.testing.assert_array_equal(view, want)
        np.testing.assert_array_equal(out[s * n : (s + 1) * n], want)


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
@pytest.mark.parametrize("per_file", [4, 5, 7])  # 15 = 2 x 7 + 1: a last batch of one
def test_batches_cutting_a_slides_partners_give_brute_force_ranks(
    tmp_path: Path, monkeypatch, device: str, per_file: int
) -> None:
    """6 slides, 15 pairs in batches of 4, 5 or 7: a slide's partners split between batches,
    a batch holding several first slides; every pair's ranks equal the brute force."""
    import itertools

    from reference import brute_ranks

    import plismbench
    import plismbench.evaluation.engine

    monkeypatch.setattr(plismbench.evaluation.engine, "pairs_per_file", lambda n, d: per_file)
    slides = plism_like(np.random.default_rng(9), stainings=("GIV", "GM", "HR"), n=37,
                        signs=True)  # fmt: skip
    slides[sorted(slides)[2]][5] = slides[sorted(slides)[2]][0]  # a duplicated tile
    write_store(tmp_path / "f", "m", slides)
    res = plismbench.evaluate("m", tmp_path / "f", tmp_path / "out", device=device,
                              save_ranks=True, progress=False, allow_missing=True)  # fmt: skip
    assert res.pairs_computed == 15
    assert len(list((res.output_dir / ".cache" / "pairs").glob("*.npy"))) == -(-15 // per_file)
    for a, b in itertools.combinations(sorted(slides), 2):
        ranks = np.load(res.output_dir / "ranks" / f"{a}---{b}.npy")
        np.testing.assert_array_equal(ranks, np.stack(brute_ranks(slides[a], slides[b])))


def test_without_the_match_table_the_ranks_are_the_same(tmp_path: Path, monkeypatch) -> None:
    """Matches from the per-row Gram table or pair by pair: same ranks; cosines within
    float32 product rounding."""
    import plismbench
    from plismbench.metrics import cpu as backend_module

    slides = plism_like(np.random.default_rng(8), stainings=("GIV", "GM", "HR"), n=30,
                        signs=True)  # fmt: skip
    write_store(tmp_path / "f", "m", slides)
    run = {"device": "cpu", "allow_missing": True, "progress": False}
    with_table = plismbench.evaluate("m", tmp_path / "f", tmp_path / "a", **run)
    monkeypatch.setattr(backend_module, "MATCH_TABLE_BYTES", 0)
    without = plismbench.evaluate("m", tmp_path / "f", tmp_path / "b", **run)
    a, b = with_table.metrics, without.metrics
    for col in a.columns:
        if col == "cosine_similarity":
            np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-9)
        else:
            assert a[col].to_list() == b[col].to_list(), col
