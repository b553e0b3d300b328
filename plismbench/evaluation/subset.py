"""Which tiles of each slide enter the metrics.

On full PLISM slides (16,278 rows), ``--n-tiles`` 460, 2,713, 5,426 and 8,139 (the
default) use exactly the reference's subsets (``plismbench/assets/reference_subsets``,
from owkin/plism-benchmark, CC BY 4.0): row indices into the 16,278 rows sorted by tile
coordinates, as in every ``features.npy``. So numbers compare with the published
leaderboard. Any other ``n`` (or slides of another size) takes the first ``n`` entries
of a fixed permutation of the rows (``numpy.random.default_rng(0)``), sorted.
``--tile-subset FILE.npy`` takes explicit row indices; their order does not matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plismbench.data.catalogue import N_TILES
from plismbench.errors import InputError
from plismbench.store.evaluation import DEFAULT_N_TILES

#: Sizes used by the reference benchmark (16,278 / 35, / 6, / 3, / 2 and all).
STANDARD_N_TILES: tuple[int, ...] = (460, 2_713, 5_426, 8_139, 16_278)
SUBSET_SEED: int = 0
#: Sizes with a shipped reference subset (full PLISM slides only).
REFERENCE_SIZES: tuple[int, ...] = (460, 2_713, 5_426, 8_139)


def reference_subset(n_tiles: int) -> np.ndarray:
    """The reference's sorted row indices for ``n_tiles`` (one of `REFERENCE_SIZES`)."""
    from importlib.resources import files

    res = files("plismbench.assets").joinpath(f"reference_subsets/tiles_subset_{n_tiles}.npy")
    with res.open("rb") as fh:
        return np.sort(np.load(fh, allow_pickle=False)).astype(np.int64)


def parse_n_tiles(value: str | int | None) -> int | None:
    """``None``/``"all"`` -> None (meaning every tile), else a positive int."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"--n-tiles {value!r}: expected an integer or 'all'") from None
    if n < 1:
        raise InputError(f"--n-tiles {n}: must be at least 1")
    return n


def default_n_tiles(n_available: int) -> int:
    """8,139 for full PLISM slides, every tile otherwise."""
    return DEFAULT_N_TILES if n_available == N_TILES else n_available


def select_tiles(n_available: int, n_tiles: int) -> np.ndarray:
    """Sorted row indices of the deterministic subset of size ``n_tiles``."""
    if n_tiles > n_available:
        raise InputError(f"--n-tiles {n_tiles} exceeds the {n_available} tiles per slide")
    if n_tiles == n_available:
        return np.arange(n_available, dtype=np.int64)
    order = np.random.default_rng(SUBSET_SEED).permutation(n_available)
    return np.sort(order[:n_tiles]).astype(np.int64)


def load_subset(path: str | Path, n_available: int) -> np.ndarray:
    """Validated, sorted row indices from a ``.npy`` file."""
    path = Path(path)
    try:
        idx = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: tile subset file not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy index array ({exc})") from None
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or idx.size == 0:
        raise InputError(
            f"{path}: expected a non-empty 1-D integer array, got {idx.dtype} {idx.shape}"
        )
    if idx.min() < 0 or idx.max() >= n_available:
        raise InputError(f"{path}: indices must lie in [0, {n_available}), the tiles per slide")
    if np.unique(idx).size != idx.size:
        raise InputError(f"{path}: indices are not unique")
    return np.sort(idx).astype(np.int64)


def resolve(
    n_available: int, n_tiles: str | int | None = None, tile_subset: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """The row indices to use and a short description for provenance."""
    n = parse_n_tiles(n_tiles) if n_tiles is not None else None
    if tile_subset is not None:
        idx = load_subset(tile_subset, n_available)
        if n is not None and n != idx.size:
            raise InputError(f"--n-tiles {n} contradicts {tile_subset} ({idx.size} indices)")
        return idx, f"file:{Path(tile_subset).name}"
    if n_tiles is None:
        n = default_n_tiles(n_available)
    elif n is None:
        n = n_available
    if n_available == N_TILES and n in REFERENCE_SIZES:
        return reference_subset(n), f"reference-{n}"
    idx = select_tiles(n_available, n)
    return idx, (f"all-{n}" if n == n_available else f"deterministic-{n}")
