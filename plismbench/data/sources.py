"""The four tile sources: local h5 files, Hub streaming, an image folder, local parquet.

Every source yields, per slide, uint8 (B, H, W, 3) tiles in the canonical order (by (x, y) of
the tile ids) and checks that every slide holds the same tile ids. File handles are opened
lazily and per process, so a source can be pickled to DataLoader workers.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from plismbench.data.base import TileBatch, TileSource
from plismbench.data.catalogue import TILES_REPO
from plismbench.data.tiles import canonical_order, check_same_tiles, check_tile
from plismbench.errors import InputError

__all__ = [
    "FolderSource",
    "H5Source",
    "HubStreamingSource",
    "ParquetSource",
    "open_source",
]

#: Image suffixes read by :class:`FolderSource`.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Columns of the tiles-dataset parquet schema.
PARQUET_COLUMNS: tuple[str, ...] = ("slide_id", "tile_id", "png")
_MAX_OPEN = 16


def open_source(
    *,
    download_dir: str | os.PathLike[str] | None = None,
    streaming: bool = False,
    tiles_dir: str | os.PathLike[str] | None = None,
    parquet: str | os.PathLike[str] | None = None,
    slides: Sequence[str] | None = None,
    repo_id: str = TILES_REPO,
    revision: str | None = None,
) -> TileSource:
    """Open the one tile source selected by exactly one of the four arguments.

    ``download_dir``: ``{slide_id}.h5`` files; ``streaming``: the parquet shards of
    ``repo_id`` on the Hub; ``tiles_dir``: ``<slide_id>/<tile_id>.png`` (or .jpg/.tif);
    ``parquet``: a parquet file or a folder of them. ``slides`` restricts to these slide ids.
    """
    chosen = [
        name
        for name, value in (
            ("--download-dir", download_dir),
            ("--streaming", streaming),
            ("--tiles-dir", tiles_dir),
            ("--parquet", parquet),
        )
        if value
    ]
    if len(chosen) != 1:
        got = ", ".join(chosen) if chosen else "none"
        raise InputError(
            "choose exactly one tile source: --download-dir, --streaming, --tiles-dir or "
            f"--parquet (got {got})"
        )
    if download_dir:
        return H5Source(download_dir, slides=slides)
    if tiles_dir:
        return FolderSource(tiles_dir, slides=slides)
    if parquet:
        return ParquetSource(parquet, slides=slides)
    return HubStreamingSource(repo_id=repo_id, revision=revision, slides=slides)


class _Source:
    """Slide listing, canonical order and tile-id consistency shared by all sources."""

    def __init__(self, slides: Sequence[str] | None) -> None:
        self._only = sorted(set(slides)) if slides else None
        self._slides: list[str] | None = None
        self._coords: dict[str, np.ndarray] = {}
        self._names: dict[str, list[str]] = {}
        self._pid: int | None = None
        self._local: threading.local | None = None

    # -- to implement -------------------------------------------------------------------------
    def _label(self) -> str:
        """Where the data is, for errors."""
        raise NotImplementedError

    def _list_slides(self) -> list[str]:
        raise NotImplementedError

    def _where(self, slide_id: str) -> str:
        """The file or folder holding one slide, for errors."""
        raise NotImplementedError

    def _tile_names(self, slide_id: str) -> list[str]:
        """Tile ids of one slide in storage order (and remember where each one is)."""
        raise NotImplementedError

    def _reorder(self, slide_id: str, order: np.ndarray) -> None:
        """Remember the canonical order (storage positions) of a slide."""

    # -- shared -------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_local"] = None
        state["_pid"] = None
        return state

    def _handle(self, key: Any, opener: Any) -> Any:
        """A cache of open handles per process and per thread.

        Never shared across a fork (h5py handles are not fork-safe), nor across the
        prefetch threads: a pyarrow ``ParquetFile`` is not safe for concurrent reads, and
        an eviction must never close a handle that another thread is reading.
        """
        pid = os.getpid()
        if self._pid != pid or self._local is None:
            self._local = threading.local()  # the parent's handles are left alone
            self._pid = pid
        handles: OrderedDict[Any, Any] | None = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = OrderedDict()
        if key in handles:
            handles.move_to_end(key)
            return handles[key]
        handle = opener()
        handles[key] = handle
        while len(handles) > _MAX_OPEN:
            _, old = handles.popitem(last=False)
            close = getattr(old, "close", None)
            if close is not None:
                close()
        return handle

    def slide_ids(self) -> list[str]:
        """Slide ids this source holds (restricted to ``slides`` when given), sorted."""
        if self._slides is None:
            found = self._list_slides()
            if self._only is not None:
                have = set(found)
                missing = [s for s in self._only if s not in have]
                if missing:
                    raise InputError(
                        f"{self._label()}: slide {missing[0]!r} not found"
                        + (f" ({len(missing)} slides missing)" if len(missing) > 1 else "")
                    )
                found = list(self._only)
            if not found:
                raise InputError(f"{self._label()}: no slides found")
            self._slides = sorted(found)
        return list(self._slides)

    def _check_known(self, slide_id: str) -> None:
        if slide_id not in self.slide_ids():
            raise InputError(f"{self._label()}: slide {slide_id!r} not found")

    def coords(self, slide_id: str) -> np.ndarray:
        """(n_tiles, 3) int64 (level, x, y) in canonical order; same tiles in every slide."""
        if slide_id not in self._coords:
            self._check_known(slide_id)
            names = self._tile_names(slide_id)
            where = self._where(slide_id)
            if not names:
                raise InputError(f"{where}: no tiles in slide {slide_id!r}")
            order, coords = canonical_order(names, where=where)
            ref = self.slide_ids()[0]
            if slide_id != ref:
                check_same_tiles(self.coords(ref), self._where(ref), coords, where)
            self._reorder(slide_id, order)
            self._names[slide_id] = [names[i] for i in order]
            coords.setflags(write=False)
            self._coords[slide_id] = coords
        return self._coords[slide_id]

    def _batches(
        self, slide_id: str, batch_size: int, start: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        coords = self.coords(slide_id)
        for b in range(max(start, 0), len(coords), batch_size):
            yield b, coords[b : b + batch_size]


def _stack(tiles: list[np.ndarray]) -> np.ndarray:
    return np.stack(tiles) if tiles else np.empty((0, 0, 0, 3), np.uint8)


# ---------------------------------------------------------------------------------------------
class H5Source(_Source):
    """``{slide_id}.h5`` files with one root dataset per tile, ``tile_{level}_{x}_{y}``."""

    def __init__(self, download_dir: str | os.PathLike[str], slides: Sequence[str] | None = None):
        super().__init__(slides)
        self.root = Path(download_dir)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: download folder not found")
        self._layouts: dict[str, tuple[tuple[int, ...], np.ndarray]] = {}

    def _label(self) -> str:
        return str(self.root)

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        return {"type": "h5", "download_dir": str(self.root.resolve())}

    def _list_slides(self) -> list[str]:
        return sorted(
            p.name[: -len(".h5")] for p in self.root.glob("*.h5") if not p.name.startswith(".")
        )

    def path(self, slide_id: str) -> Path:
        """The h5 file of a slide."""
        return self.root / f"{slide_id}.h5"

    def _where(self, slide_id: str) -> str:
        return str(self.path(slide_id))

    def _file(self, slide_id: str) -> Any:
        import h5py

        def opener() -> Any:
            path = self.path(slide_id)
            if not path.exists():
                raise InputError(f"{path}: file not found")
            try:
                return h5py.File(path, "r")
            except OSError as exc:
                raise InputError(
                    f"{path}: cannot read h5 file (truncated or corrupt?): {exc}"
                ) from exc

        return self._handle(slide_id, opener)

    def _tile_names(self, slide_id: str) -> list[str]:
        try:
            return list(self._file(slide_id).keys())
        except (OSError, RuntimeError) as exc:
            raise InputError(f"{self.path(slide_id)}: cannot list tiles: {exc}") from exc

    def _layout(self, slide_id: str) -> tuple[tuple[int, ...], np.ndarray]:
        """Tile shape and, per tile in canonical order, its byte offset in the file.

        Every tile is checked here once (a uint8 (H, W, 3) dataset, one shape for all).
        The offset is -1 where the bytes cannot be read directly (compressed, chunked or
        compact storage); those tiles are read through h5py.
        """
        cached = self._layouts.get(slide_id)
        if cached is not None:
            return cached
        import h5py

        where = str(self.path(slide_id))
        handle = self._file(slide_id)
        names = self._names[slide_id]
        offsets = np.full(len(names), -1, dtype=np.int64)
        shape: tuple[int, ...] | None = None
        for i, name in enumerate(names):
            ds = handle.get(name)
            if not isinstance(ds, h5py.Dataset):
                raise InputError(f"{where}: tile {name!r} is not a dataset")
            if ds.dtype != np.uint8 or len(ds.shape) != 3 or ds.shape[2] != 3:
                raise InputError(
                    f"{where}: tile {name!r} is {ds.dtype} {tuple(ds.shape)}, "
                    "expected uint8 (H, W, 3)"
                )
            if shape is None:
                shape = tuple(ds.shape)
            elif tuple(ds.shape) != shape:
                raise InputError(
                    f"{where}: tile {name!r} has shape {tuple(ds.shape)}, expected {shape} "
                    "like the other tiles"
                )
            if ds.chunks is None and ds.compression is None:
                offset = ds.id.get_offset()
                if offset is not None:
                    offsets[i] = offset
        assert shape is not None
        self._layouts[slide_id] = (shape, offsets)
        return shape, offsets

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on.

        PLISM's tiles are uncompressed contiguous datasets: their bytes are read with
        ``os.preadv`` at offsets found once per slide, which holds neither the GIL nor
        h5py's global lock, so reader threads run in parallel. Other layouts go through
        h5py.
        """
        where = str(self.path(slide_id))
        for b, coords in self._batches(slide_id, batch_size, start):
            shape, offsets = self._layout(slide_id)  # once per slide, then cached
            nbytes = int(np.prod(shape))
            names = self._names[slide_id][b : b + len(coords)]
            out = np.empty((len(names), *shape), np.uint8)
            for i, name in enumerate(names):
                offset = int(offsets[b + i])
                try:
                    if offset >= 0:
                        got = os.preadv(self._fd(slide_id), [memoryview(out[i]).cast("B")], offset)
                        if got != nbytes:
                            raise OSError(f"read {got} of {nbytes} bytes")
                    else:
                        self._file(slide_id)[name].read_direct(out[i])
                except (OSError, RuntimeError) as exc:
                    raise InputError(
                        f"{where}: cannot read tile {name!r} (truncated or corrupt?): {exc}"
                    ) from exc
            yield TileBatch(slide_id=slide_id, start=b, coords=coords, tiles=out)

    def _fd(self, slide_id: str) -> int:
        """A raw read-only descriptor of the slide's file (per process and thread)."""
        fd: _RawFile = self._handle(("raw", slide_id), lambda: _RawFile(self.path(slide_id)))
        return fd.fd


class _RawFile:
    """An ``os.open`` descriptor with ``close()``, for the handle cache."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
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
            missing = [c for c in PARQUET_COLUMNS if c not in names]
            if missing:
                raise InputError(
                    f"{self.files[i]}: parquet file lacks column(s) {', '.join(missing)}; "
                    f"expected the tiles-dataset schema {', '.join(PARQUET_COLUMNS)}"
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


class HubStreamingSource(_ParquetSource):
    """A Hub tiles dataset, streamed with ``datasets.load_dataset(..., streaming=True)``.

    Nothing is downloaded ahead. The slide index comes from cheap metadata read with HTTP Range
    requests: listing slides reads the shard footers (row-group statistics of ``slide_id``) and
    indexing a slide reads only its ``slide_id`` / ``tile_id`` columns, which also tells which
    shards hold it. Only iterated slides are streamed, each with ``datasets`` restricted to the
    shards that hold it (``data_files``), filtered on ``slide_id`` before anything is decoded
    (``png`` cast to ``Image(decode=False)``); the PNG bytes are then decoded here. Slides that
    are already done are therefore skipped without fetching or decoding their images.

    Every :meth:`iter_batches` call streams the slide from its first row, so readers must
    take a slide in one pass (``sequential``), not in parallel segments.
    """

    #: Read each slide in one pass: a call with ``start`` > 0 still streams the rows before it.
    sequential = True

    def __init__(
        self,
        repo_id: str = TILES_REPO,
        revision: str | None = None,
        slides: Sequence[str] | None = None,
    ) -> None:
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        from plismbench.data.hub import endpoint, hub_errors, require_online

        self.repo_id = repo_id
        require_online(f"streaming {repo_id}")
        with hub_errors(repo_id):
            api = HfApi(endpoint=endpoint())
            info = api.repo_info(repo_id, repo_type="dataset", revision=revision)
            self.revision = str(info.sha)
            entries = [
                e
                for e in api.list_repo_tree(
                    repo_id, repo_type="dataset", revision=self.revision, recursive=True
                )
                if isinstance(e, RepoFile) and e.path.endswith(".parquet")
            ]
        entries.sort(key=lambda e: e.path)
        if not entries:
            raise InputError(f"{repo_id}: no parquet shards found on the Hub")
        self.sizes = [int(e.size) for e in entries]
        super().__init__([e.path for e in entries], slides)

    def _label(self) -> str:
        return f"{self.repo_id}@{self.revision[:8]}"

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        return {"type": "hub-streaming", "repo_id": self.repo_id, "revision": self.revision}

    def _open(self, i: int) -> Any:
        from plismbench.data.hub import HubFile

        return HubFile(self.repo_id, self.files[i], self.revision, self.sizes[i])

    def shards(self, slide_id: str) -> list[str]:
        """The parquet shards (paths in the repo) that hold a slide, from its index."""
        self.coords(slide_id)
        return [self.files[i] for i in sorted({i for i, _, _ in self._parts[slide_id]})]

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        """Tiles of one slide from row ``start`` on, streamed with ``datasets``, then decoded.

        Rows arrive in storage order; a batch is decoded and yielded as soon as all its tiles
        have arrived, and streaming stops after the last batch. When the stored order is the
        canonical one, at most one batch of PNG bytes is held; otherwise the bytes (not decoded)
        of the tiles that arrived early are held until their batch is complete.
        """
        from plismbench.data.hub import stream_slide_rows

        batches = self._batches(slide_id, batch_size, start)
        pending = next(batches, None)
        if pending is None:
            return
        names = self._names[slide_id]
        rank_of = {name: rank for rank, name in enumerate(names)}
        first = pending[0]
        where = f"{self._label()} (slide {slide_id!r})"
        held: dict[int, bytes] = {}
        seen: set[int] = set()
        shape: tuple[int, ...] | None = None
        rows = stream_slide_rows(self.repo_id, self.revision, self.shards(slide_id), slide_id)
        try:
            for tile_id, png in rows:
                rank = rank_of.get(tile_id)
                if rank is None:
                    raise InputError(f"{where}: streamed tile {tile_id!r} is not in the index")
                if rank in seen:
                    raise InputError(f"{where}: tile {tile_id!r} is stored more than once")
                seen.add(rank)
                if rank < first:
                    continue  # before the resume point: never decoded
                data = png.get("bytes") if isinstance(png, dict) else png
                if not isinstance(data, bytes):
                    raise InputError(f"{where}: tile {tile_id!r} has no image bytes")
                held[rank] = data
                while pending is not None:
                    b, coords = pending
                    if any(r not in held for r in range(b, b + len(coords))):
                        break
                    tiles = []
                    for r in range(b, b + len(coords)):
                        tile = decode_image(held.pop(r), where=where, name=names[r])
                        check_tile(tile, where=where, name=names[r], shape=shape)
                        shape = tile.shape
                        tiles.append(tile)
                    yield TileBatch(slide_id=slide_id, start=b, coords=coords, tiles=_stack(tiles))
                    pending = next(batches, None)
                if pending is None:
                    return  # every requested tile is out: stop streaming
        finally:
            rows.close()
        missing = [names[r] for r in range(first, len(names)) if r not in seen]
        raise InputError(
            f"{where}: {len(missing)} tile(s) of the index were not streamed"
            + (f", e.g. {missing[0]!r}" if missing else "")
        )
