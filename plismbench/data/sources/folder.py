"""A folder of tile images, ``T/<slide_id>/<tile_id>.png``; image decoding for all sources."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from plismbench.data.base import TileBatch
from plismbench.data.formats import IMAGE_SUFFIXES
from plismbench.data.sources.base import _Source, _stack
from plismbench.data.tiles import check_tile
from plismbench.errors import InputError


def decode_image(data: bytes | str | os.PathLike[str], *, where: str, name: str) -> np.ndarray:
    """Decode PNG/JPEG/TIFF bytes or a file into a uint8 (H, W, 3) RGB array."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{where}: cannot decode tile {name!r}: {exc}") from exc


class FolderSource(_Source):
    """A folder ``T/<slide_id>/<tile_id>.png`` (or .jpg/.tif), for users' own registered tiles."""

    def __init__(self, tiles_dir: str | os.PathLike[str], slides: Sequence[str] | None = None):
        super().__init__(slides)
        self.root = Path(tiles_dir)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: tiles folder not found")
        self._files: dict[str, list[str]] = {}

    def _label(self) -> str:
        return str(self.root)

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        return {"type": "folder", "tiles_dir": str(self.root.resolve())}

    def _list_slides(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _where(self, slide_id: str) -> str:
        return str(self.root / slide_id)

    def _tile_names(self, slide_id: str) -> list[str]:
        files = sorted(
            entry.name
            for entry in os.scandir(self.root / slide_id)
            if not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            and entry.is_file()
        )
        self._files[slide_id] = files
        return [os.path.splitext(f)[0] for f in files]

    def _reorder(self, slide_id: str, order: np.ndarray) -> None:
        files = self._files[slide_id]
        self._files[slide_id] = [files[i] for i in order]

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on, decoded with Pillow."""
        folder = self.root / slide_id
        shape: tuple[int, ...] | None = None
        for b, coords in self._batches(slide_id, batch_size, start):
            tiles = []
            for fname in self._files[slide_id][b : b + len(coords)]:
                path = folder / fname
                tile = decode_image(path, where=str(path), name=os.path.splitext(fname)[0])
                check_tile(tile, where=str(path), name=os.path.splitext(fname)[0], shape=shape)
                shape = tile.shape
                tiles.append(tile)
            yield TileBatch(slide_id=slide_id, start=b, coords=coords, tiles=_stack(tiles))
