"""CorpusLoader: seeded epochs, resumable at a step, ranks partition each global batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest

from plismbench.distillation.corpus import CorpusLoader, StreamOrder, TileCorpus, open_corpus
from plismbench.errors import InputError

N = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> TileCorpus:
    """10 tiles whose first pixel is their index, so a tile names itself."""
    path = tmp_path_factory.mktemp("loader") / "tiles.h5"
    tiles = np.zeros((N, 8, 8, 3), np.uint8)
    tiles[:, 0, 0, 0] = np.arange(N)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=tiles)
    return open_corpus(path)


def _ids(batch: list[np.ndarray]) -> list[int]:
    return [int(t[0, 0, 0]) for t in batch]


def _stream(corpus: TileCorpus, **kw: int) -> list[list[int]]:
    with CorpusLoader(corpus, seed=kw.pop("seed", 5), **kw) as loader:  # type: ignore[arg-type]
        return [_ids(b) for b in loader]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4099])
def test_order_is_a_permutation_per_epoch(n: int) -> None:
    order = StreamOrder(n, seed=1)
    e0 = order.indices(np.arange(n))
    e1 = order.indices(np.arange(n, 2 * n))
    assert sorted(e0) == list(range(n)) and sorted(e1) == list(range(n))
    if n >= 64:  # shuffled, differently per epoch and per seed
        assert (e0 != e1).mean() > 0.9 and (e0 != np.arange(n)).mean() > 0.9
        assert (StreamOrder(n, seed=2).indices(np.arange(n)) != e0).mean() > 0.9
        assert abs(np.corrcoef(np.arange(n), e0)[0, 1]) < 0.2


def test_steps_follow_the_seeded_order_across_epochs(corpus: TileCorpus) -> None:
    steps = _stream(corpus, global_batch=4, steps=5, workers=0)  # 20 positions: 2 epochs
    flat = [i for s in steps for i in s]
    order = StreamOrder(N, seed=5)
    assert flat == order.indices(np.arange(20)).tolist()
    assert sorted(flat[:N]) == list(range(N)) and sorted(flat[N:]) == list(range(N))
    assert _stream(corpus, global_batch=4, steps=5, workers=0, seed=6) != steps


def test_resume_at_a_step_equals_the_uninterrupted_stream(corpus: TileCorpus) -> None:
    whole = _stream(corpus, global_batch=4, steps=6, workers=0)
    assert _stream(corpus, global_batch=4, start_step=3, steps=3, workers=0) == whole[3:]


def test_rank_shares_partition_the_global_batch(corpus: TileCorpus) -> None:
    whole = _stream(corpus, global_batch=6, steps=4, workers=0)
    shares = [
        _stream(corpus, global_batch=6, steps=4, workers=0, rank=r, world=3) for r in range(3)
    ]
    for step in range(4):
        assert [i for r in range(3) for i in shares[r][step]] == whole[step]
        assert all(len(shares[r][step]) == 2 for r in range(3))
    loader = CorpusLoader(corpus, global_batch=6, seed=5, rank=2, world=3, workers=0)
    assert loader.positions(4).tolist() == [28, 29]
    assert _ids(corpus.read(loader.indices(4))) == loader.order.indices(np.arange(28, 30)).tolist()


def test_worker_processes_give_the_same_stream(corpus: TileCorpus) -> None:
    inline = _stream(corpus, global_batch=4, steps=7, workers=0)
    assert _stream(corpus, global_batch=4, steps=7, workers=2, prefetch=2) == inline
    with CorpusLoader(corpus, global_batch=4, seed=5, workers=2) as loader:  # endless
        it = iter(loader)
        first = [next(it) for _ in range(3)]
    assert [_ids(b) for b in first] == inline[:3]
    assert all(t.shape == (8, 8, 3) and t.dtype == np.uint8 for t in first[0])


def test_bad_batch_is_one_line(corpus: TileCorpus) -> None:
    with pytest.raises(InputError, match="multiple of the 3 rank"):
        CorpusLoader(corpus, global_batch=8, seed=0, world=3)


def test_mixed_tile_sizes_come_as_a_list(tmp_path: Path) -> None:
    from PIL import Image

    for i, size in enumerate((8, 12, 8)):
        Image.new("RGB", (size, size), (i, 0, 0)).save(tmp_path / f"t{i}.png")
    tiles = next(iter(CorpusLoader(open_corpus(tmp_path), global_batch=3, seed=0, workers=0)))
    assert sorted(t.shape[0] for t in tiles) == [8, 8, 12]


class _Huge(TileCorpus):
    """43M tiles (H0-mini's corpus size) that only name themselves: nothing held per tile."""

    kind = "fake"

    def __len__(self) -> int:
        return 43_000_000

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        return [np.full((1, 1, 3), i % 251, np.uint8) for i in self._check(indices)]


def test_tens_of_millions_of_tiles() -> None:
    huge = _Huge("huge")
    loader = CorpusLoader(huge, global_batch=2048, seed=3, start_step=60_000, rank=5, world=8,
                          workers=0, steps=2)  # fmt: skip
    batches = list(loader)
    assert [len(b) for b in batches] == [256, 256]
    idx = np.concatenate([loader.indices(60_000), loader.indices(60_001)])
    assert idx.min() >= 0 and idx.max() < len(huge) and len(np.unique(idx)) == len(idx)
    assert idx.max() - idx.min() > len(huge) // 2  # spread over the whole corpus
    wrap = loader.order.indices(np.arange(2 * len(huge) - 1000, 2 * len(huge) + 1000))
    assert wrap.min() >= 0 and wrap.max() < len(huge)  # epoch boundary
