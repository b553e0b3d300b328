"""A folder tree of image files with any names: one tile per file."""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.catalogue import plism_slide_ids
from plismbench.distillation.corpus.base import IMAGE_SUFFIXES, TileCorpus, decode_tile
from plismbench.errors import InputError

__all__ = ["FolderCorpus"]


def _walk(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Relative paths of the images under ``root`` as one utf-8 blob and its offsets.

    Folders are visited depth-first with entries sorted by name at every level, so the
    order is deterministic without holding (or sorting) the whole listing as Python
    strings; hidden entries are skipped and a folder reached twice by a link is skipped.
    """
    blob = bytearray()
    ends = array("q")
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path, prefix: str) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{folder}: cannot list folder: {exc}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                visit(Path(entry.path), f"{prefix}{entry.name}/")
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                blob.extend(f"{prefix}{entry.name}".encode())
                ends.append(len(blob))

    visit(root, "")
    offsets = np.zeros(len(ends) + 1, dtype=np.int64)
    offsets[1:] = np.frombuffer(ends, dtype=np.int64) if len(ends) else []
    return np.frombuffer(bytes(blob), dtype=np.uint8), offsets


class FolderCorpus(TileCorpus):
    """Every image (png, jpg, jpeg, tif, tiff, webp) under a folder, in sorted path order."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(str(root))
        self.root = Path(root)
        self._blob, self._offsets = _walk(self.root)
        if len(self) == 0:
            raise InputError(
                f"{self.root}: no tiles found (no {'/'.join(IMAGE_SUFFIXES)} file in the tree)"
            )
        plism = set(plism_slide_ids())
        self.is_plism = any(
            e.is_dir() and e.name in plism for e in os.scandir(self.root)
        )  # the benchmark's own layout: <slide_id>/<tile_id>.png

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def name(self, i: int) -> str:
        """The path of tile ``i`` relative to the root."""
        return bytes(self._blob[self._offsets[i] : self._offsets[i + 1]]).decode()

    def read(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Decode the files of ``indices`` with Pillow."""
        out = []
        for i in self._check(indices):
            name = self.name(int(i))
            path = self.root / name
            out.append(decode_tile(path, where=str(path), name=name))
        return out

    def read_encoded(self, indices: Sequence[int] | np.ndarray) -> list[bytes | None]:
        """The files' bytes."""
        return [(self.root / self.name(int(i))).read_bytes() for i in self._check(indices)]

    def _listing(self) -> list[Any]:
        return [self._blob, self._offsets]
