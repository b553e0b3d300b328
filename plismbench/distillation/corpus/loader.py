"""Per-step, per-rank batches of corpus tiles through a multi-worker DataLoader.

Step ``s`` of a global batch ``B`` is stream positions ``s*B .. s*B+B-1``
(see :class:`.order.StreamOrder`); rank ``r`` of ``world`` takes the contiguous slice
``r*B/world .. (r+1)*B/world - 1`` of it. The tiles of a step are thus the same whatever
the number of ranks, and a run resumed at step ``k`` reads exactly what an uninterrupted
one reads from step ``k`` on. Each DataLoader item is one step's share, read by one worker
(a worker keeps its open shards and row groups between steps); items arrive in step order.

An unreadable tile (a corrupt image, a missing file) is skipped: it is replaced by the next
readable tile of the corpus (index ``i + 1``, ``i + 2``, ...; the augmentation still follows
the stream position), so the batch keeps its size and a resumed run reads the same
substitutes. Its path is logged once; more than ``ceil(max_bad_tiles * len(corpus))``
unreadable tiles stop the run with one line.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from plismbench.distillation.corpus.base import TileCorpus
from plismbench.distillation.corpus.order import StreamOrder
from plismbench.errors import InputError
from plismbench.utils import distributed as dist

__all__ = ["CorpusLoader"]

_log = logging.getLogger("plismbench.distill")
#: Consecutive unreadable tiles after which a substitute is no longer searched for.
_MAX_RUN = 64


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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

    def read(self, indices: np.ndarray) -> tuple[list[np.ndarray], list[tuple[int, str]]]:
        """The tiles of ``indices``, each unreadable one replaced by the next readable tile;
        and the unreadable ones met, as (index, reason)."""
        try:
            return self.corpus.read(indices), []
        except Exception:  # any failure: read tile by tile to find it
            pass
        n = len(self.corpus)
        tiles: list[np.ndarray] = []
        bad: list[tuple[int, str]] = []
        for i in indices:
            j = int(i)
            for _ in range(min(n, _MAX_RUN)):
                try:
                    tiles.append(self.corpus.read([j])[0])
                    break
                except Exception as exc:  # the reason is recorded
                    bad.append((j, _one_line(exc)))
                    j = (j + 1) % n
            else:
                raise InputError(f"{self.corpus.path}: no readable tile among tiles {int(i)}.."
                                 f"{j} of the corpus; the last: {bad[-1][1]}")  # fmt: skip
        return tiles, bad

    def __getitem__(self, step: int) -> Any:
        tiles, bad = self.read(self.order.indices(self.positions(step)))
        if torch.utils.data.get_worker_info() is None or len({t.shape for t in tiles}) != 1:
            return tiles, bad
        out = torch.empty((len(tiles), *tiles[0].shape), dtype=torch.uint8).share_memory_()
        np.stack(tiles, out=out.numpy())
        return out, bad


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
    endless). Use as an iterable, and :meth:`close` (or ``with``) to stop the workers.
    Unreadable tiles met (all ranks) accumulate in ``bad`` (pass a dict to share or restore
    it); more than ``ceil(max_bad_tiles * len(corpus))`` raise :class:`InputError`
    (``None``: no limit).
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
        max_bad_tiles: float | None = None,
        bad: dict[int, str] | None = None,
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
        self.bad: dict[int, str] = {} if bad is None else bad
        self.max_bad_tiles = max_bad_tiles
        self.limit = None if max_bad_tiles is None else math.ceil(max_bad_tiles * len(corpus))

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
        for item, bad in self._loader:
            self._note(bad)
            yield list(item.numpy()) if isinstance(item, torch.Tensor) else item

    def _note(self, found: list[tuple[int, str]]) -> None:
        """Log new unreadable tiles once, merge every rank's, stop beyond the limit."""
        new = {j: why for j, why in found if j not in self.bad}
        for why in new.values():
            _log.info("skipped an unreadable tile: %s", why)  # not WARNING: printed twice
            print(f"skipped an unreadable tile: {why}", file=sys.stderr, flush=True)
        if dist.world() > 1 and dist.all_reduce_values([len(new)])[0] > 0:
            import torch.distributed as tdist

            every: list[Any] = [None] * dist.world()
            tdist.all_gather_object(every, new)
            for part in every:
                new.update(part)
        self.bad.update(new)
        if self.limit is not None and len(self.bad) > self.limit:
            raise InputError(
                f"{self.corpus.path}: {len(self.bad)} unreadable tiles, more than --max-bad-tiles "
                f"{self.max_bad_tiles:g} of {len(self.corpus)} tiles ({self.limit}); the last: "
                f"{next(reversed(new.values()), '')}"
            )

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
