"""The three compute stages of an evaluation, resumable and shardable over ranks.

1. *pairs*: one float32 GEMM per unordered slide pair gives the match similarities and
   the cross counts of both directions;
2. *intra*: once per slide, its own similarities are counted against the thresholds of
   all its partners (row blocks, never a full N x N kept);
3. *assemble*: ranks, top-k, MRR and median rank per pair.

Under torchrun, stages 1 and 2 are split over ranks (every ``world``-th item); each
rank commits its results to the shared cache, and rank 0 assembles. Ranks are exact,
so which rank computed what never changes a byte of the outputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from plismbench.data.catalogue import pair_type
from plismbench.evaluate.cache import PairCache
from plismbench.evaluate.store import FeatureStore
from plismbench.metrics.backend import Backend
from plismbench.metrics.ranks import CrossCounts, cross_counts, intra_counts, ranks_from_counts
from plismbench.utils.io import save_npy

RANKS_DIR = "ranks"
#: Pairs whose ranks are summarised at once (bounds memory: 2 x chunk x N x 8 bytes).
ASSEMBLE_CHUNK = 128


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
        self, store: FeatureStore, rows: np.ndarray, backend: Backend, cache: PairCache
    ) -> None:
        self.store, self.rows, self.backend, self.cache = store, rows, backend, cache
        self.n_slides = len(store.slides)
        self.pairs = all_pairs(self.n_slides)
        self._cross: dict[tuple[int, int], CrossCounts] = {}
        self._intra: dict[int, np.ndarray] = {}
        self._raw = [store.raw_rows(s, rows) for s in range(self.n_slides)]
        self.feats: list[Any] = []

    def pending(self, rank: int = 0, world: int = 1) -> tuple[list[tuple[int, int]], list[int]]:
        """This rank's unfinished pairs and slides."""
        pairs = [p for p in self.pairs if not self.cache.has_pair(*p)]
        slides = [a for a in range(self.n_slides) if not self.cache.has_intra(a)]
        return pairs[rank::world], slides[rank::world]

    def load(self, threads: int, advance: Callable[[], None]) -> None:
        """Read, check and normalise every slide (stage 0)."""
        for x in self.store.iter_normalised(self.rows, threads=min(threads, 4)):
            self.feats.append(self.backend.put(x))
            advance()

    def cross(self, i: int, j: int) -> CrossCounts:
        if (i, j) not in self._cross:
            self._cross[(i, j)] = self.cache.load_pair(i, j)
        return self._cross[(i, j)]

    def intra(self, a: int) -> np.ndarray:
        if a not in self._intra:
            self._intra[a] = self.cache.load_intra(a)
        return self._intra[a]

    def run_pair(self, i: int, j: int) -> None:
        fa, fb = self.feats[i], self.feats[j]
        counts = cross_counts(self.backend, fa, fb, self._raw[i], self._raw[j])
        self.cache.save_pair(i, j, counts)
        self._cross[(i, j)] = CrossCounts(
            counts.match, counts.a_to_b.astype(np.int32), counts.b_to_a.astype(np.int32)
        )

    def run_pairs(self, pairs: list[tuple[int, int]], tick: Callable[[], None]) -> None:
        """Stage 1 for ``pairs`` (concurrently on CPU when they are small)."""

        def one(pair: tuple[int, int]) -> None:
            self.run_pair(*pair)
            tick()

        self.backend.map_pairs(one, pairs, len(self.rows))

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
                "mrr": ((np.mean(1.0 / r_ab, axis=1) + np.mean(1.0 / r_ba, axis=1)) / 2).tolist(),
                "median_rank": np.median(np.concatenate([r_ab, r_ba], axis=1), axis=1).tolist(),
                **{f"top_{k}_accuracy_a_to_b": ab[k].tolist() for k in ks},
                **{f"top_{k}_accuracy_b_to_a": ba[k].tolist() for k in ks},
            }
            for key, values in chunk_cols.items():
                cols.setdefault(key, []).extend(values)
        return pl.DataFrame(cols)
