"""Per-step, per-rank batches of corpus tiles through a multi-worker DataLoader.

Step ``s`` of a global batch ``B`` is stream positions ``s*B .. s*B+B-1``
(see `.order.StreamOrder`); rank ``r`` of ``world`` takes the contiguous slice
``r*B/world .. (r+1)*B/world - 1`` of it. The tiles of a step are thus the same whatever
the number of ranks, and a run resumed at step ``k`` reads exactly what an uninterrupted
one reads from step ``k`` on. Each DataLoader item is one step's share, read by one worker
(a worker keeps its open shards and row groups between steps); items arrive in step order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from plismbench.distillation.corpus.base import TileCorpus
from plismbench.distillation.corpus.order import StreamOrder
from plismbench.errors import InputError

__all__ = ["CorpusLoader"]


class _StepReads(Dataset[Any]):
    """Item ``s``: this rank's tiles of step ``s``.

    In a worker process, tiles of one shape are stacked into one uint8 tensor allocated in
    shared memory, so that they cross to the main process as one block, not n pickles.
    """

    def __init__(self, corpus: TileCorpus, order: StreamOrder, batch: int, rank: int, share: int):
        self.corpus, self.order = corpus, order
        self.batch, self.rank, self.share = batch, rank, share

    def positions(self, step: int) -> np.ndarray:
        first = step * self.batch + self.rank * self.share
        return np.arange(first, first + self.share, dtype=np.int64)

    def __getitem__(self, step: int) -> Any:
        tiles = self.corpus.read(self.order.indices(self.positions(step)))
        if torch.utils.data.get_worker_info() is None or len({t.shape for t in tiles}) != 1:
            return tiles
        out = torch.empty((len(tiles), *tiles[0].shape), dtype=torch.uint8).share_memory_()
        np.stack(tiles, out=out.numpy())
        return out


class _Steps(Sampler[int]):
    """Steps ``start, start + 1, ...`` (up to ``stop`` when given)."""

    def __init__(self, start: int, stop: int | None) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        if self.stop is None:
            return itertools.count(self.start)
        return iter(range(self.start, self.stop))


def _keep(item: Any) -> Any:
    return item


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


class CorpusLoader:
    """This rank's tiles, step after step, as lists of uint8 (H, W, 3) RGB numpy arrays.

    ``workers`` DataLoader processes (persistent; 0 reads in the calling process) each read
    whole steps, ``prefetch`` steps ahead per worker. ``steps`` bounds the stream (default:
    endless). Use as an iterable, and `close()` (or ``with``) to stop the workers.
    """

    def __init__(
        self,
        corpus: TileCorpus,
        *,
        global_batch: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
        workers: int = 4,
        prefetch: int = 2,
        steps: int | None = None,
    ) -> None:
        if global_batch < 1 or world < 1 or global_batch % world:
            raise InputError(
                f"global batch {global_batch} must be a positive multiple of the {world} rank(s)"
            )
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} out of range for world size {world}")
        if start_step < 0:
            raise InputError(f"start step {start_step} must be >= 0")
        self.corpus, self.seed = corpus, seed
        self.global_batch, self.world, self.rank = global_batch, world, rank
        self.share = global_batch // world
        self.start_step = start_step
        self.stop = None if steps is None else start_step + steps
        self.order = StreamOrder(len(corpus), seed)
        self._reads = _StepReads(corpus, self.order, global_batch, rank, self.share)
        self.workers, self.prefetch = max(0, workers), prefetch
        self._loader: DataLoader[Any] | None = None

    def positions(self, step: int) -> np.ndarray:
        """Stream positions of this rank's tiles at ``step`` (for per-sample augment seeds)."""
        return self._reads.positions(step)

    def indices(self, step: int) -> np.ndarray:
        """Corpus indices of this rank's tiles at ``step``."""
        return self.order.indices(self.positions(step))

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        self.close()
        self._loader = DataLoader(
            self._reads,
            batch_size=None,
            sampler=_Steps(self.start_step, self.stop),
            num_workers=self.workers,
            collate_fn=_keep,
            persistent_workers=self.workers > 0,
            prefetch_factor=max(1, self.prefetch) if self.workers > 0 else None,
            worker_init_fn=_one_thread if self.workers > 0 else None,
        )
        for item in self._loader:
            yield list(item.numpy()) if isinstance(item, torch.Tensor) else item

    def close(self) -> None:
        """Stop the worker processes."""
        loader, self._loader = self._loader, None
        if loader is not None and getattr(loader, "_iterator", None) is not None:
            loader._iterator._shutdown_workers()  # type: ignore[union-attr]
            loader._iterator = None

    def __enter__(self) -> CorpusLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
