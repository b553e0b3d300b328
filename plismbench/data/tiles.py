"""Tile ids, the canonical tile order and tile checks shared by every reader."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from plismbench.data.catalogue import TILE_LEVEL
from plismbench.errors import InputError

_TILE_ID = re.compile(r"^tile_(\d+)_(\d+)_(\d+)$")


def tile_id(x: int, y: int, level: int = TILE_LEVEL) -> str:
    """The PLISM tile id of a tile, e.g. ``tile_16_224_448``."""
    return f"tile_{level}_{x}_{y}"


def parse_tile_id(name: str, *, where: str) -> tuple[int, int, int]:
    """``tile_{level}_{x}_{y}`` -> (level, x, y); ``where`` names the file for errors."""
    match = _TILE_ID.match(name)
    if match is None:
        raise InputError(
            f"{where}: tile id {name!r} cannot be parsed: expected 'tile_{{level}}_{{x}}_{{y}}'"
        )
    level, x, y = match.groups()
    return int(level), int(x), int(y)


def canonical_order(names: Sequence[str], *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Order tile ids canonically: by (x, y), then level.

    Returns ``(order, coords)``: ``names[order[i]]`` is the i-th tile and ``coords`` the
    (n, 3) int64 (level, x, y) in that order. Duplicates are an error naming ``where``.
    """
    coords = np.array([parse_tile_id(n, where=where) for n in names], dtype=np.int64)
    coords = coords.reshape(-1, 3)
    order = np.lexsort((coords[:, 0], coords[:, 2], coords[:, 1]))
    coords = coords[order]
    if len(coords) > 1:
        dup = np.flatnonzero(np.all(coords[1:] == coords[:-1], axis=1))
        if dup.size:
            i = int(dup[0])
            a, b = names[int(order[i])], names[int(order[i + 1])]
            what = f"{a!r}" if a == b else f"{a!r} and {b!r}"
            raise InputError(f"{where}: duplicate tile {what}")
    return order, coords


def check_same_tiles(ref: np.ndarray, ref_where: str, coords: np.ndarray, where: str) -> None:
    """Every slide must hold exactly the same tile ids: compare with a reference slide."""
    if ref.shape == coords.shape and np.array_equal(ref, coords):
        return
    ref_set = {tuple(c) for c in ref.tolist()}
    got_set = {tuple(c) for c in coords.tolist()}
    extra = sorted(got_set - ref_set)
    missing = sorted(ref_set - got_set)
    details = []
    for what, cells in (("missing", missing), ("extra", extra)):
        if cells:
            level, x, y = cells[0]
            details.append(f"{len(cells)} {what} (e.g. {tile_id(x, y, level=level)!r})")
    raise InputError(
        f"{where}: tile ids differ from those of {ref_where}: {', '.join(details)}; "
        "every slide must hold the same registered tiles"
    )


def check_tile(tile: np.ndarray, *, where: str, name: str, shape: tuple[int, ...] | None) -> None:
    """A tile must be a uint8 (H, W, 3) array, of ``shape`` when given."""
    if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
        raise InputError(
            f"{where}: tile {name!r} is {tile.dtype} {tuple(tile.shape)}, expected uint8 (H, W, 3)"
        )
    if shape is not None and tuple(tile.shape) != tuple(shape):
        raise InputError(
            f"{where}: tile {name!r} has shape {tuple(tile.shape)}, expected {tuple(shape)} "
            "like the other tiles"
        )
