"""The three compute stages of an evaluation, resumable and shardable over ranks.

1. *pairs*: one float32 GEMM per unordered slide pair gives the match similarities and
   the cross counts of both directions; pairs are computed and cached in batches of
   about a second of CPU work (:func:`pairs_per_file`);
2. *intra*: once per slide, its own similarities are counted against the thresholds of
   all its partners (row blocks, never a full N x N kept);
3. *assemble*: ranks, top-k, MRR and median rank per pair.

Under torchrun, stages 1 and 2 are split over ranks (every ``world``-th batch or slide); each
rank commits its results to the shared cache, and rank 0 assembles. Ranks are exact,
so which rank computed what never changes a byte of the outputs.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.data.catalogue import pair_type
from plismbench.evaluation.cache import PairCache
from plismbench.metrics.backend import Backend
from plismbench.metrics.catalogue import RANK_METRICS
from plismbench.metrics.ranks import (
    CrossCounts,
    cross_counts_many,
    intra_counts,
    ranks_from_counts,
)
from plismbench.store.features import FeatureStore
from plismbench.utils.io import save_npy

RANKS_DIR = "ranks"
#: Pairs whose ranks are summarised at once (bounds memory: 2 x chunk x N x 8 bytes).
ASSEMBLE_CHUNK = 128
#: GEMM work per cached batch of pairs (~0.15 s on one core), and the most pairs in one.
BATCH_FLOP = 2**34
MAX_PAIRS_PER_FILE = 64


def pairs_per_file(n_tiles: int, dim: int) -> int:
    """Slide pairs per cache file: about :data:`BATCH_FLOP` of GEMM, at least one.

    A small pair costs less than creating its file (about a millisecond on some file
    systems); a kill loses at most the batches in progress.
    """
    flop = 2 * max(1, n_tiles) ** 2 * max(1, dim)
    return max(1, min(MAX_PAIRS_PER_FILE, BATCH_FLOP // flop))


@dataclass(frozen=True)
class Batch:
    """Consecutive slide pairs computed, and cached, together."""

    index: int
    pairs: tuple[tuple[int, int], ...]


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
    """Allocate without NumPy's huge-page advice: on a fragmented host, faulting in a
    freshly advised multi-GB array waits on memory compaction (measured: 0.05 s or 0.3 s
    for 128 MB, at random)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - other NumPy layouts
        yield
        return
    previous = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(previous)


def all_pairs(n_slides: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n_slides), 2))


def partners(a: int, n_slides: int) -> list[int]:
    return [b for b in range(n_slides) if b != a]


def column(a: int, b: int) -> int:
    """Column of partner ``b`` in slide ``a``'s intra table (partners skip ``a``)."""
    return b if b < a else b - 1


class Stages:
    """Pair and intra results, each read from the cache at most once."""

    def __init__(
        self, store: FeatureStore, rows: np.ndarray, backend: Backend, cache: PairCache,
        per_file: int = 1,
    ) -> None:  # fmt: skip
        self.store, self.rows, self.backend, self.cache = store, rows, backend, cache
        self.n_slides = len(store.slides)
        self.pairs = all_pairs(self.n_slides)
        self.batches = [
            Batch(b, tuple(self.pairs[p : p + per_file]))
            for b, p in enumerate(range(0, len(self.pairs), per_file))
        ]
        self._batch_of = {pair: batch for batch in self.batches for pair in batch.pairs}
        self._cross: dict[tuple[int, int], CrossCounts] = {}
        self._intra: dict[int, np.ndarray] = {}
        self._raw = [store.raw_rows(s, rows) for s in range(self.n_slides)]
        self.feats: list[Any] = []
        self.stacked: Any = None
        self._match_table: np.ndarray | None = None

    def pending(self, rank: int = 0, world: int = 1) -> tuple[list[Batch], list[int]]:
        """This rank's unfinished batches of pairs, and slides."""
        batches = [b for b in self.batches if not self.cache.has_batch(b.index)]
        slides = [a for a in range(self.n_slides) if not self.cache.has_intra(a)]
        return batches[rank::world], slides[rank::world]

    def load(self, threads: int, advance: Callable[[], None]) -> None:
        """Read, check and normalise every slide (stage 0), into one (slides x N, d)
        array: the partners of a slide in a batch are then one contiguous block."""
        n = len(self.rows)
        with _small_pages():
            stacked = np.empty((self.n_slides * n, self.store.dim), dtype=np.float32)
        for _ in self.store.iter_normalised(self.rows, threads=min(threads, 4), out=stacked):
            advance()
        self.stacked = self.backend.put(stacked)
        self.feats = [self.stacked[s * n : (s + 1) * n] for s in range(self.n_slides)]
        self._match_table = self.backend.match_table(self.stacked, n)

    def release(self) -> None:
        """Drop the features (the assembly needs only the cached counts)."""
        self.feats, self.stacked, self._match_table = [], None, None

    def cross(self, i: int, j: int) -> CrossCounts:
        if (i, j) not in self._cross:
            batch = self._batch_of[(i, j)]
            self._cross.update(zip(batch.pairs, self.cache.load_batch(batch.index), strict=True))
        return self._cross[(i, j)]

    def intra(self, a: int) -> np.ndarray:
        if a not in self._intra:
            self._intra[a] = self.cache.load_intra(a)
        return self._intra[a]

    def run_batch(self, batch: Batch, tick: Callable[[], None]) -> None:
        """A batch's pairs, one wide GEMM per first slide (its partners are consecutive)."""
        n = len(self.rows)
        counts: list[CrossCounts] = []
        for i, group in itertools.groupby(batch.pairs, key=lambda pair: pair[0]):
            js = [j for _, j in group]
            ys = self.stacked[js[0] * n : (js[-1] + 1) * n]
            raws = [self._raw[j] for j in js]
            table = self._match_table
            match = None if table is None else np.ascontiguousarray(table[:, i, js].T)
            counts += cross_counts_many(self.backend, self.feats[i], ys, self._raw[i], raws, match)
            for _ in js:
                tick()
        self.cache.save_batch(batch.index, counts)
        for pair, c in zip(batch.pairs, counts, strict=True):
            self._cross[pair] = CrossCounts(
                c.match, c.a_to_b.astype(np.int32), c.b_to_a.astype(np.int32)
            )

    def run_pairs(self, batches: list[Batch], tick: Callable[[], None]) -> None:
        """Stage 1 for ``batches`` (concurrently on CPU when the pairs are small)."""
        self.backend.map_items(lambda b: self.run_batch(b, tick), batches, len(self.rows))

    def run_intras(self, slides: list[int], tick: Callable[[], None]) -> None:
        """Stage 2 for ``slides`` (concurrently on CPU when they are small)."""

        def one(a: int) -> None:
            self.run_intra(a)
            tick()

        self.backend.map_items(one, slides, len(self.rows))

    def run_intra(self, a: int) -> None:
        others = partners(a, self.n_slides)
        thr = np.stack([self.cross(min(a, b), max(a, b)).match for b in others], axis=1)
        raws = [self._raw[b] for b in others]
        counts = intra_counts(self.backend, self.feats[a], thr, self._raw[a], raws)
        self.cache.save_intra(a, counts)
        self._intra[a] = counts.astype(np.int32)

    def assemble(
        self, ks: tuple[int, ...], ranks_dir: Path | None, advance: Callable[[], None]
    ) -> pl.DataFrame:
        """One row per pair: cosine, top-k (both directions and their mean), MRR, median.

        Vectorised over chunks of pairs (the same reductions as
        :func:`~plismbench.metrics.retrieval.summarise_ranks`, row by row).
        """
        names = [self.store.slides[s].name for s in range(self.n_slides)]
        cols: dict[str, list[Any]] = {}
        for c0 in range(0, len(self.pairs), ASSEMBLE_CHUNK):
            chunk = self.pairs[c0 : c0 + ASSEMBLE_CHUNK]
            r_ab = np.empty((len(chunk), len(self.rows)), dtype=np.int64)
            r_ba = np.empty_like(r_ab)
            cosine = np.empty(len(chunk))
            for p, (i, j) in enumerate(chunk):
                cross = self.cross(i, j)
                r_ab[p], r_ba[p] = ranks_from_counts(
                    cross, self.intra(i)[:, column(i, j)], self.intra(j)[:, column(j, i)]
                )
                cosine[p] = np.mean(cross.match)
                if ranks_dir is not None:
                    a, b = names[i].slide_id, names[j].slide_id
                    save_npy(ranks_dir / RANKS_DIR / f"{a}---{b}.npy",
                             np.stack([r_ab[p], r_ba[p]]).astype(np.int32))  # fmt: skip
                advance()
            ab = {k: np.mean(r_ab <= k, axis=1) for k in ks}
            ba = {k: np.mean(r_ba <= k, axis=1) for k in ks}
            chunk_cols: dict[str, Any] = {
                "slide_a": [names[i].slide_id for i, _ in chunk],
                "slide_b": [names[j].slide_id for _, j in chunk],
                "staining_a": [names[i].staining for i, _ in chunk],
                "scanner_a": [names[i].scanner for i, _ in chunk],
                "staining_b": [names[j].staining for _, j in chunk],
                "scanner_b": [names[j].scanner for _, j in chunk],
                "pair_type": [pair_type(names[i], names[j]) for i, j in chunk],
                "n_tiles": [len(self.rows)] * len(chunk),
                "cosine_similarity": cosine.tolist(),
                **{f"top_{k}_accuracy": ((ab[k] + ba[k]) / 2).tolist() for k in ks},
                **{m.name: m.from_ranks(r_ab, r_ba).tolist() for m in RANK_METRICS if m.from_ranks},
                **{f"top_{k}_accuracy_a_to_b": ab[k].tolist() for k in ks},
                **{f"top_{k}_accuracy_b_to_a": ba[k].tolist() for k in ks},
            }
            for key, values in chunk_cols.items():
                cols.setdefault(key, []).extend(values)
        return pl.DataFrame(cols)
