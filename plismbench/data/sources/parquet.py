"""Parquet files in the tiles-dataset schema (``slide_id``, ``tile_id``, ``png``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.base import TileBatch
from plismbench.data.formats import TILE_COLUMNS
from plismbench.data.sources.base import _Source, _stack
from plismbench.data.sources.folder import decode_image
from plismbench.data.tiles import check_tile
from plismbench.errors import InputError


class _ParquetSource(_Source):
    """Parquet files in the tiles-dataset schema: ``slide_id``, ``tile_id``, ``png``.

    Only the ``slide_id`` / ``tile_id`` columns of the row groups that may hold a slide are read
    to index it (row-group statistics skip the others); ``png`` bytes are read and decoded only
    for the slides that are iterated.
    """

    def __init__(self, files: list[str], slides: Sequence[str] | None) -> None:
        super().__init__(slides)
        self.files = files
        self._ranges: dict[int, list[tuple[str, str] | None]] = {}
        self._rg_slides: dict[tuple[int, int], set[str]] = {}
        #: per slide: (file index, row group, rows within the row group) in storage order
        self._parts: dict[str, list[tuple[int, int, np.ndarray]]] = {}
        self._order: dict[str, np.ndarray] = {}

    def _open(self, i: int) -> Any:
        raise NotImplementedError

    def _parquet(self, i: int) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def opener() -> Any:
            try:
                pf = pq.ParquetFile(self._open(i))
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{self.files[i]}: cannot read parquet file (truncated or corrupt?): {exc}"
                ) from exc
            names = pf.schema_arrow.names
            missing = [c for c in TILE_COLUMNS if c not in names]
            if missing:
                raise InputError(
                    f"{self.files[i]}: parquet file lacks column(s) {', '.join(missing)}; "
                    f"expected the tiles-dataset schema {', '.join(TILE_COLUMNS)}"
                )
            return pf

        return self._handle(i, opener)

    def _read(self, i: int, rg: int, columns: list[str]) -> Any:
        import pyarrow as pa

        try:
            return self._parquet(i).read_row_group(rg, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{self.files[i]}: cannot read row group {rg} (truncated or corrupt?): {exc}"
            ) from exc

    def _slide_range(self, i: int) -> list[tuple[str, str] | None]:
        """Per row group, (min, max) slide id from the statistics, or None when unknown."""
        if i not in self._ranges:
            pf = self._parquet(i)
            col = pf.schema_arrow.get_field_index("slide_id")
            ranges: list[tuple[str, str] | None] = []
            for rg in range(pf.metadata.num_row_groups):
                stats = pf.metadata.row_group(rg).column(col).statistics
                ok = stats is not None and stats.has_min_max
                ranges.append((str(stats.min), str(stats.max)) if ok else None)
            self._ranges[i] = ranges
        return self._ranges[i]

    def _slides_of(self, i: int, rg: int) -> set[str]:
        key = (i, rg)
        if key not in self._rg_slides:
            bounds = self._slide_range(i)[rg]
            if bounds is not None and bounds[0] == bounds[1]:
                self._rg_slides[key] = {bounds[0]}
            else:
                col = self._read(i, rg, ["slide_id"]).column("slide_id")
                self._rg_slides[key] = {str(s) for s in col.unique().to_pylist()}
        return self._rg_slides[key]

    def _label(self) -> str:
        return self.files[0] if len(self.files) == 1 else f"{Path(self.files[0]).parent} (parquet)"

    def _list_slides(self) -> list[str]:
        found: set[str] = set()
        for i in range(len(self.files)):
            for rg in range(len(self._slide_range(i))):
                found |= self._slides_of(i, rg)
        return sorted(found)

    def _candidates(self, slide_id: str) -> Iterator[tuple[int, int]]:
        for i in range(len(self.files)):
            for rg, bounds in enumerate(self._slide_range(i)):
                if bounds is None or bounds[0] <= slide_id <= bounds[1]:
                    yield i, rg

    def _where(self, slide_id: str) -> str:
        files = sorted({self.files[i] for i, _, _ in self._parts.get(slide_id, [])})
        shown = ", ".join(files[:2]) + (", ..." if len(files) > 2 else "")
        return f"{shown or self._label()} (slide {slide_id!r})"

    def _tile_names(self, slide_id: str) -> list[str]:
        import pyarrow.compute as pc

        parts: list[tuple[int, int, np.ndarray]] = []
        names: list[str] = []
        for i, rg in self._candidates(slide_id):
            table = self._read(i, rg, ["slide_id", "tile_id"])
            mask = pc.equal(table.column("slide_id"), slide_id).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(mask)
            if rows.size:
                parts.append((i, rg, rows))
                names += [str(t) for t in table.column("tile_id").take(rows).to_pylist()]
        self._parts[slide_id] = parts
        return names

    def _reorder(self, slide_id: str, order: np.ndarray) -> None:
        self._order[slide_id] = order

    def _png(self, slide_id: str, part: int) -> list[bytes]:
        import pyarrow as pa

        i, rg, rows = self._parts[slide_id][part]
        column = self._read(i, rg, ["png"]).column("png").take(rows).combine_chunks()
        if pa.types.is_struct(column.type):
            column = column.field("bytes")
        return column.to_pylist()

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on; png bytes read per row group, then decoded.

        When the stored order is the canonical one, one row group is held at a time; otherwise
        the slide's png bytes (not decoded) are held while it is iterated.
        """
        self.coords(slide_id)
        order = self._order[slide_id]
        parts = self._parts[slide_id]
        offsets = np.cumsum([0] + [len(rows) for _, _, rows in parts])
        sequential = bool(np.all(np.diff(order[max(start, 0) :]) > 0))
        cache: dict[int, list[bytes]] = {}
        shape: tuple[int, ...] | None = None
        for b, coords in self._batches(slide_id, batch_size, start):
            tiles = []
            for rank in range(b, b + len(coords)):
                pos = int(order[rank])
                part = int(np.searchsorted(offsets, pos, side="right")) - 1
                if part not in cache:
                    if sequential:
                        cache.clear()
                    cache[part] = self._png(slide_id, part)
                data = cache[part][pos - int(offsets[part])]
                name = self._names[slide_id][rank]
                where = self.files[parts[part][0]]
                if not isinstance(data, bytes):
                    raise InputError(f"{where}: tile {name!r} of slide {slide_id!r} has no image")
                tile = decode_image(data, where=where, name=name)
                check_tile(tile, where=where, name=name, shape=shape)
                shape = tile.shape
                tiles.append(tile)
            yield TileBatch(slide_id=slide_id, start=b, coords=coords, tiles=_stack(tiles))


class ParquetSource(_ParquetSource):
    """Local parquet files in the tiles-dataset schema (one file or a folder of them)."""

    def __init__(self, parquet: str | os.PathLike[str], slides: Sequence[str] | None = None):
        root = Path(parquet)
        if root.is_file():
            files = [str(root)]
        elif root.is_dir():
            files = sorted(
                str(p)
                for p in root.rglob("*.parquet")
                if not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
        else:
            raise InputError(f"{root}: parquet file or folder not found")
        if not files:
            raise InputError(f"{root}: no .parquet files found")
        super().__init__(files, slides)

    def _open(self, i: int) -> Any:
        return self.files[i]

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        return {"type": "parquet", "files": [str(Path(f).resolve()) for f in self.files]}
