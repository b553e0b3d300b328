"""Parquet shards with an image column (bytes, or ``{"bytes": ...}`` as HF ``Image`` writes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.catalogue import plism_slide_ids
from plismbench.data.formats import TILE_COLUMNS
from plismbench.distillation.corpus.base import HandleCache, ShardedBytesCorpus
from plismbench.errors import InputError

__all__ = ["ParquetCorpus"]


class ParquetCorpus(ShardedBytesCorpus):
    """Rows of parquet shards; indexed from the footers only (row-group sizes).

    A read fetches the image column of each row group it touches once, and each process
    and thread keeps its last 4 row groups. Parquet has no cheaper unit of random access:
    in a random order over a large corpus a tile costs about one row group's read (100
    rows as ``datasets`` writes images), so tar shards suit tens of millions of tiles.
    """

    kind = "parquet"

    def __init__(
        self, files: list[Path], root: Path, label: str, image_column: str = "image"
    ) -> None:
        super().__init__(label)
        self.files, self.root = files, root
        self._handles = HandleCache()
        self._groups = HandleCache(max_open=4)
        columns: list[str] = []
        rg_file: list[int] = []
        rg_num: list[int] = []
        sizes: list[int] = []
        for i, f in enumerate(files):
            pf = self._open(i)
            columns.append(self._column(pf, f, image_column))
            for rg in range(pf.metadata.num_row_groups):
                rg_file.append(i)
                rg_num.append(rg)
                sizes.append(pf.metadata.row_group(rg).num_rows)
        self._columns = columns
        self._rg_file = np.asarray(rg_file, dtype=np.int32)
        self._rg_num = np.asarray(rg_num, dtype=np.int32)
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._handles.clear()
        if len(self) == 0:
            raise InputError(f"{label}: no tiles found (the parquet shards hold no rows)")

    def _open(self, i: int) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def opener() -> Any:
            try:
                return pq.ParquetFile(self.files[i])
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{self.files[i]}: cannot read parquet file (truncated or corrupt?): {exc}"
                ) from exc

        return self._handles.get(i, opener)

    def _column(self, pf: Any, path: Path, image_column: str) -> str:
        import pyarrow as pa

        names = pf.schema_arrow.names
        column = image_column
        if image_column not in names and all(c in names for c in TILE_COLUMNS):
            column = "png"
        if column not in names:
            raise InputError(
                f"{path}: no image column {image_column!r} (columns: {', '.join(names)}); "
                "pass image_column"
            )
        if all(c in names for c in TILE_COLUMNS) and self._plism_rows(pf):
            self.is_plism = True
        kind = pf.schema_arrow.field(column).type
        is_struct = pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0
        if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or is_struct):
            raise InputError(f"{path}: column {column!r} is {kind}, not image bytes")
        return column

    @staticmethod
    def _plism_rows(pf: Any) -> bool:
        """Whether row-group statistics show PLISM slide ids."""
        col = pf.schema_arrow.get_field_index("slide_id")
        plism = set(plism_slide_ids())
        for rg in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(rg).column(col).statistics
            if stats is not None and stats.has_min_max and str(stats.min) in plism:
                return True
        return False

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _group(self, g: int) -> Any:
        import pyarrow as pa

        i, rg = int(self._rg_file[g]), int(self._rg_num[g])

        def load() -> Any:
            try:
                col = self._open(i).read_row_group(rg, columns=[self._columns[i]]).column(0)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{self.files[i]}: cannot read row group {rg} (truncated or corrupt?): {exc}"
                ) from exc
            col = col.combine_chunks()
            return col.field("bytes") if pa.types.is_struct(col.type) else col

        return self._groups.get(g, load)

    def _bytes(self, indices: Sequence[int] | np.ndarray) -> list[tuple[bytes, str, str]]:
        """(image bytes, file, name) of ``indices``; each row group touched is read once."""
        idx = self._check(indices)
        groups = np.searchsorted(self._starts, idx, side="right") - 1
        out: list[Any] = [None] * len(idx)
        for g in np.unique(groups):  # grouped, so a row group is never read twice per call
            column = self._group(int(g))
            f = self.files[int(self._rg_file[g])]
            for k in np.flatnonzero(groups == g):
                row = int(idx[k] - self._starts[g])
                data = column[row].as_py()
                if not isinstance(data, bytes):
                    raise InputError(f"{f}: row {row} of row group {self._rg_num[g]} has no image")
                out[k] = (data, str(f), f"row {int(idx[k])}")
        return out
