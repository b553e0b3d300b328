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
from plismbench.metrics.retrieval import summarise_ranks
from plismbench.utils.io import save_npy

RANKS_DIR = "ranks"


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
        """One row per pair: cosine, top-k (both directions and their mean), MRR, median."""
        records = []
        for i, j in self.pairs:
            cross = self.cross(i, j)
            r_ab, r_ba = ranks_from_counts(
                cross, self.intra(i)[:, column(i, j)], self.intra(j)[:, column(j, i)]
            )
            r_ab, r_ba = r_ab.astype(np.int64), r_ba.astype(np.int64)
            s = summarise_ranks(r_ab, r_ba, ks)
            a, b = self.store.slides[i].name, self.store.slides[j].name
            rec: dict[str, Any] = {
                "slide_a": a.slide_id,
                "slide_b": b.slide_id,
                "staining_a": a.staining,
                "scanner_a": a.scanner,
                "staining_b": b.staining,
                "scanner_b": b.scanner,
                "pair_type": pair_type(a, b),
                "n_tiles": len(r_ab),
                "cosine_similarity": float(np.mean(cross.match)),
            }
            rec.update({f"top_{k}_accuracy": s.top_k[k] for k in ks})
            rec.update({"mrr": s.mrr, "median_rank": s.median_rank})
            rec.update({f"top_{k}_accuracy_a_to_b": s.top_k_a_to_b[k] for k in ks})
            rec.update({f"top_{k}_accuracy_b_to_a": s.top_k_b_to_a[k] for k in ks})
            records.append(rec)
            if ranks_dir is not None:
                save_npy(
                    ranks_dir / RANKS_DIR / f"{a.slide_id}---{b.slide_id}.npy",
                    np.stack([r_ab, r_ba]).astype(np.int32),
                )
            advance()
        return pl.DataFrame(records)
