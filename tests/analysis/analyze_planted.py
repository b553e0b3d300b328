"""Planted crossed designs for the analyze tests (exact fractions by construction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from featurestore import write_store

from plismbench.analysis import variance
from plismbench.data.catalogue import SCANNERS, STAININGS, SlideName, slide_id
from plismbench.store.design import crossed_design

#: Component order of the exact planted design (``plant_exact``).
COMPONENTS = (
    "location", "staining", "scanner", "staining:scanner",
    "location:staining", "location:scanner", "location:staining:scanner",
)  # fmt: skip


def simplex(n: int) -> np.ndarray:
    """(n, n) unit rows that sum to zero (centred one-hot vectors)."""
    u = np.eye(n) - 1.0 / n
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    return np.divide(u, norm, out=np.zeros_like(u), where=norm > 0)


def plant_exact(
    n_loc: int, n_st: int, n_sc: int, weights: dict[str, float], seed: int = 0
) -> np.ndarray:
    """(S, C, L, d) unit-norm rows whose variance fractions are exactly ``w^2 / sum w^2``.

    Each component lives in its own block of dimensions, built from centred simplex
    vectors (and their Kronecker products for interactions), so the components are
    orthogonal and every row has the same norm; a random rotation hides the blocks.
    """
    ul, us, uc = simplex(n_loc), simplex(n_st), simplex(n_sc)
    rows = np.empty((n_st, n_sc, n_loc), dtype=object)
    for s in range(n_st):
        for c in range(n_sc):
            for loc in range(n_loc):
                parts = {
                    "location": ul[loc],
                    "staining": us[s],
                    "scanner": uc[c],
                    "staining:scanner": np.kron(us[s], uc[c]),
                    "location:staining": np.kron(ul[loc], us[s]),
                    "location:scanner": np.kron(ul[loc], uc[c]),
                    "location:staining:scanner": np.kron(np.kron(ul[loc], us[s]), uc[c]),
                }
                rows[s, c, loc] = np.concatenate(
                    [weights.get(name, 0.0) * parts[name] for name in COMPONENTS]
                )
    x = np.stack([np.stack(list(rows[s, c])) for s in range(n_st) for c in range(n_sc)])
    x = x.reshape(n_st, n_sc, n_loc, -1)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((x.shape[-1],) * 2))
    x = x @ q
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def expected_fractions(weights: dict[str, float]) -> dict[str, float]:
    total = sum(w**2 for w in weights.values())
    return {name: weights.get(name, 0.0) ** 2 / total for name in COMPONENTS}


def write_design(
    features_dir: Path, model: str, x: np.ndarray, stainings=None, scanners=None
) -> dict[str, np.ndarray]:
    """Write (S, C, L, d) features as PLISM-named slides; returns them by slide id."""
    st = stainings or STAININGS[: x.shape[0]]
    sc = scanners or SCANNERS[: x.shape[1]]
    slides = {slide_id(st[i], sc[j]): x[i, j] for i in range(x.shape[0]) for j in range(x.shape[1])}
    write_store(features_dir, model, slides)
    return slides


def moments_of(x: np.ndarray) -> variance.Moments:
    """Feed (S, C, L, d) features, slides in a shuffled order, into Moments."""
    n_st, n_sc, n_loc, d = x.shape
    cells = [(s, c) for s in range(n_st) for c in range(n_sc)]
    order = np.random.default_rng(1).permutation(len(cells))
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s, c in (cells[i] for i in order)]
    design = crossed_design(names)
    m = variance.Moments(design, n_loc, d)
    for slide, i in enumerate(order):
        m.add(slide, x[cells[i]])
    return m
