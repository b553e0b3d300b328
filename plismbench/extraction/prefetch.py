"""Reading a slide's tiles ahead of the model, in threads, in canonical order."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from plismbench.data.base import TileBatch, TileSource
from plismbench.errors import InputError

_END = object()


class Prefetcher:
    """Reads a slide's batches ahead of the model in threads, preserving canonical order.

    The rows from ``start`` on are split into segments of ``segment_batches``
    batches; ``workers`` threads read segments round-robin, each into its own
    bounded queue, and the consumer drains the segments in order. With
    ``workers=0`` batches are read inline. A source whose ``sequential``
    attribute is true (Hub streaming: every ``iter_batches`` call streams the
    slide from its first row) is read as one segment, by one thread.
    """

    def __init__(
        self,
        source: TileSource,
        slide_id: str,
        n_rows: int,
        batch_size: int,
        start: int,
        workers: int,
        pin: bool,
        segment_batches: int = 8,
        depth: int = 4,
    ):
        self.source = source
        self.slide_id = slide_id
        self.batch_size = batch_size
        self.pin = pin
        seg_rows = batch_size * segment_batches
        if getattr(source, "sequential", False):
            seg_rows = max(n_rows - start, 1)
            workers = min(workers, 1)
        self.workers = workers
        self.segments = [(s, min(s + seg_rows, n_rows)) for s in range(start, n_rows, seg_rows)]
        self.queues: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=depth * segment_batches) for _ in range(max(workers, 1))
        ]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def _to_tensor(self, batch: TileBatch) -> tuple[TileBatch, torch.Tensor]:
        tiles = torch.from_numpy(np.ascontiguousarray(batch.tiles))
        if self.pin:
            tiles = tiles.pin_memory()
        return batch, tiles

    def _batches(self, lo: int) -> Iterator[TileBatch]:
        """The source's batches; a failure to read (network, damaged file) is one line."""
        try:
            yield from self.source.iter_batches(self.slide_id, self.batch_size, start=lo)
        except (InputError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise InputError(
                f"reading slide {self.slide_id} failed ({type(exc).__name__}: {first}); "
                "run the same command again to resume"
            ) from exc

    def _read(self, lo: int, hi: int) -> Iterator[TileBatch]:
        row = lo
        for batch in self._batches(lo):
            n = len(batch.tiles)
            if batch.start != row:
                raise InputError(
                    f"source gave slide {self.slide_id} rows from {batch.start}, expected {row}"
                )
            if row + n > hi:
                n = hi - row
                batch = TileBatch(batch.slide_id, row, batch.coords[:n], batch.tiles[:n])
            yield batch
            row += n
            if row >= hi:
                return
        if row < hi:
            raise InputError(f"source ended slide {self.slide_id} at row {row}, expected {hi}")

    def _worker(self, k: int) -> None:
        q = self.queues[k]
        try:
            for idx in range(k, len(self.segments), self.workers):
                lo, hi = self.segments[idx]
                for batch in self._read(lo, hi):
                    if self.stop.is_set():
                        return
                    q.put(self._to_tensor(batch))
                q.put(_END)
        except BaseException as exc:  # surfaced to the consumer
            q.put(exc)

    def __iter__(self) -> Iterator[tuple[TileBatch, torch.Tensor]]:
        if self.workers <= 0:
            for lo, hi in self.segments:
                for batch in self._read(lo, hi):
                    yield self._to_tensor(batch)
            return
        for k in range(self.workers):
            thread = threading.Thread(target=self._worker, args=(k,), daemon=True)
            thread.start()
            self.threads.append(thread)
        try:
            for idx in range(len(self.segments)):
                q = self.queues[idx % self.workers]
                while True:
                    item = q.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            self.close()

    def close(self) -> None:
        self.stop.set()
        for q in self.queues:
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for thread in self.threads:
            thread.join(timeout=5)
