"""Neighbourhoods of every tile with FAISS, and what they are made of.

An exact inner-product index (``IndexFlatIP``) over L2-normalised features: the k nearest
neighbours of a tile are its k most cosine-similar tiles among all slides' tiles, itself
excluded. Each neighbour is put in exactly one class:

* ``same_location``: the same tile location, in another slide (the registered match);
* ``same_slide``: another location of the same slide (same staining and scanner);
* ``same_staining``: another location, same staining, another scanner;
* ``same_scanner``: another location, same scanner, another staining;
* ``other``: another location, staining and scanner.

``global_top_k`` is the fraction of tiles with at least one ``same_location`` neighbour.
It saturates: with 90 registered matches per tile, a model with most of its variance in
staining still finds one among 10 neighbours, so it is a labelled column, not a headline.
The chance share of each class is that of k neighbours drawn uniformly at random.

**Retrieval of the registered matches** (the headline): every tile has ``R`` = slides - 1
matches (the same location in the other slides). Over its ``R`` nearest other tiles,

* ``map_at_r``: MAP@R (Musgrave et al. 2020), ``(1/R) sum_{i<=R} P(i) rel(i)`` with
  ``P(i)`` the precision of the first ``i`` neighbours: 1 only when the ``R`` matches
  are the ``R`` nearest tiles, and sensitive to their order;
* ``r_precision``: the share of matches among the ``R`` nearest tiles;
* ``top_1``: the share of tiles whose nearest other tile is a match.

Chance is that of a uniformly random ranking of the ``M = N - 1`` other tiles:
``R / M`` for ``r_precision`` and ``top_1``, and for MAP@R
``(1/R) sum_i [R/M + (i-1) R (R-1) / (M (M-1))] / i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Neighbour classes, in report order.
CLASSES: tuple[str, ...] = ("same_location", "same_slide", "same_staining", "same_scanner", "other")
#: Retrieval of the registered matches, headline first.
RETRIEVAL: tuple[str, ...] = ("map_at_r", "r_precision", "top_1")


@dataclass(frozen=True)
class Labels:
    """Per row: tile location, slide, staining and scanner indices."""

    location: np.ndarray
    slide: np.ndarray
    staining: np.ndarray
    scanner: np.ndarray


def faiss_gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def knn(x: np.ndarray, k: int, *, use_gpu: bool | None = None, block: int = 16384) -> np.ndarray:
    """(n, k) indices of each row's k most similar other rows (exact inner product).

    Rows should be L2-normalised. Queries run in blocks of ``block`` rows, so the
    (block, k + 1) results bound the extra memory. The GPU serves when FAISS has one.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k < n:
        raise ValueError(f"k={k} must lie in [1, {n - 1}] for {n} rows")
    index: faiss.Index = faiss.IndexFlatIP(d)
    if use_gpu is None:
        use_gpu = faiss_gpu_available()
    if use_gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(x)
    out = np.empty((n, k), np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        _, idx = index.search(x[start:stop], k + 1)
        out[start:stop] = drop_self(idx, np.arange(start, stop))
    return out


def drop_self(idx: np.ndarray, self_ids: np.ndarray) -> np.ndarray:
    """(m, k) from (m, k + 1) neighbour lists: remove the query itself, else the last."""
    keep = idx != self_ids[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False
    return idx[keep].reshape(idx.shape[0], idx.shape[1] - 1)


def classify(idx: np.ndarray, labels: Labels) -> np.ndarray:
    """(n, k) class index into :data:`CLASSES` of every neighbour."""
    q = np.arange(idx.shape[0])[:, None]
    same_loc = labels.location[idx] == labels.location[q]
    same_slide = labels.slide[idx] == labels.slide[q]
    same_st = labels.staining[idx] == labels.staining[q]
    same_sc = labels.scanner[idx] == labels.scanner[q]
    cls = np.full(idx.shape, 4, np.int64)
    cls[same_sc & ~same_st] = 3
    cls[same_st & ~same_sc] = 2
    cls[same_slide] = 1
    cls[same_loc] = 0
    return cls


def chance_shares(n_locations: int, n_stainings: int, n_scanners: int) -> dict[str, float]:
    """Share of each class among uniformly random other rows."""
    k = n_stainings * n_scanners
    others = n_locations * k - 1
    counts = {
        "same_location": k - 1,
        "same_slide": n_locations - 1,
        "same_staining": (n_locations - 1) * (n_scanners - 1),
        "same_scanner": (n_locations - 1) * (n_stainings - 1),
    }
    counts["other"] = others - sum(counts.values())
    return {c: counts[c] / others for c in CLASSES}


def chance_global_top_k(n_locations: int, n_slides: int, k: int) -> float:
    """Chance that k random other rows include one of the ``n_slides - 1`` matches."""
    others = n_locations * n_slides - 1
    misses = others - (n_slides - 1)
    p_none = 1.0
    for i in range(k):
        p_none *= max(misses - i, 0) / (others - i)
    return 1.0 - p_none


def chance_map_at_r(n_locations: int, n_slides: int) -> float:
    """MAP@R of a uniformly random ranking (exact, see the module docstring)."""
    r = n_slides - 1
    m = n_locations * n_slides - 1
    if r < 1:
        return float("nan")
    pair = r * (r - 1) / (m * (m - 1)) if m > 1 else 0.0
    return float(sum((r / m + (i - 1) * pair) / i for i in range(1, r + 1)) / r)


def retrieval(idx: np.ndarray, labels: Labels) -> dict[str, float]:
    """``map_at_r``, ``r_precision`` and ``top_1`` from each row's ``R`` nearest rows."""
    r = idx.shape[1]
    q = np.arange(idx.shape[0])[:, None]
    rel = (labels.location[idx] == labels.location[q]).astype(np.float64)
    precision = np.cumsum(rel, axis=1) / np.arange(1, r + 1)
    return {
        "map_at_r": float(((precision * rel).sum(axis=1) / r).mean()),
        "r_precision": float(rel.mean()),
        "top_1": float(rel[:, 0].mean()),
    }


def matched_cosine(sample: np.ndarray) -> float:
    """Mean cosine of the same location in two different slides of (slides, loc, d) rows."""
    x = np.asarray(sample, dtype=np.float64)
    n_slides, n_loc = x.shape[:2]
    total = x.sum(axis=0)
    pairs = float(np.einsum("ij,ij->", total, total) - np.einsum("sij,sij->", x, x))
    return pairs / (n_loc * n_slides * (n_slides - 1))


def summarise(idx: np.ndarray, labels: Labels) -> dict[str, float]:
    """Neighbour class shares and ``global_top_k``."""
    cls = classify(idx, labels)
    shares = np.bincount(cls.ravel(), minlength=len(CLASSES)) / cls.size
    out = {c: float(v) for c, v in zip(CLASSES, shares, strict=True)}
    out["global_top_k"] = float((cls == 0).any(axis=1).mean())
    return out
