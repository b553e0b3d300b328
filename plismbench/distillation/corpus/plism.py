"""A PLISM tile source as a corpus, with a loud warning: those are the benchmark's tiles."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from plismbench.data.base import TileSource
from plismbench.distillation.corpus.base import TileCorpus, as_tile
from plismbench.errors import InputError

__all__ = ["PLISM_WARNING", "PlismCorpus", "PlismCorpusWarning", "warn_plism"]

PLISM_WARNING = (
    "the distillation corpus is the PLISM benchmark itself: the student would train on the "
    "benchmark's own evaluation tiles, and its PLISM robustness scores would not be comparable "
    "to other models'. Distil on another tile corpus (a folder, parquet, tar or h5 of tiles)."
)


class PlismCorpusWarning(UserWarning):
    """Raised (as a warning) when a distillation corpus is the PLISM benchmark."""


def warn_plism(where: str) -> None:
    """Warn, as a Python warning and on stderr, that ``where`` is the PLISM benchmark."""
    message = f"{where}: {PLISM_WARNING}"
    warnings.warn(message, PlismCorpusWarning, stacklevel=3)
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


class PlismCorpus(TileCorpus):
    """Every tile of every slide of a PLISM `TileSource`, slide by slide."""

    kind = "plism"
    is_plism = True

    def __init__(self, source: TileSource) -> None:
        describe = getattr(source, "describe", None)
        self.source_info: dict[str, Any] = describe() if callable(describe) else {}
        label = next(
            (str(v) for k, v in self.source_info.items() if k != "type"), type(source).__name__
        )
        super().__init__(label)
        if getattr(source, "sequential", False):
            raise InputError(
                f"{label}: a streaming tile source cannot be read at random (each tile would "
                "re-stream its slide); download it first and pass the local files"
            )
        self.source = source
        self.slides = source.slide_ids()
        counts = [len(source.coords(s)) for s in self.slides]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        if len(self) == 0:
            raise InputError(f"{label}: no tiles found in the PLISM source")
        warn_plism(label)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Read tile by tile through the source's ``iter_batches``."""
        out = []
        for i in self._check(indices):
            s = int(np.searchsorted(self._starts, i, side="right") - 1)
            slide, row = self.slides[s], int(i - self._starts[s])
            batch = next(iter(self.source.iter_batches(slide, 1, start=row)))
            out.append(as_tile(np.asarray(batch.tiles[0]), where=self.path, name=f"{slide}[{row}]"))
        return out

    def _listing(self) -> list[Any]:
        return [repr((sorted(self.source_info.items()), self.slides)).encode()]
