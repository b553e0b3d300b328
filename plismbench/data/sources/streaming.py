"""The PLISM tiles dataset streamed from the Hugging Face Hub."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from plismbench.data.base import TileBatch
from plismbench.data.catalogue import TILES_REPO
from plismbench.data.sources.base import _stack
from plismbench.data.sources.folder import decode_image
from plismbench.data.sources.parquet import _ParquetSource
from plismbench.data.tiles import check_tile
from plismbench.errors import InputError


class HubStreamingSource(_ParquetSource):
    """A Hub tiles dataset, streamed with ``datasets.load_dataset(..., streaming=True)``.

    Nothing is downloaded ahead. The slide index comes from cheap metadata read with HTTP Range
    requests: listing slides reads the shard footers (row-group statistics of ``slide_id``) and
    indexing a slide reads only its ``slide_id`` / ``tile_id`` columns, which also tells which
    shards hold it. Only iterated slides are streamed, each with ``datasets`` restricted to the
    shards that hold it (``data_files``), filtered on ``slide_id`` before anything is decoded
    (``png`` cast to ``Image(decode=False)``); the PNG bytes are then decoded here. Slides that
    are already done are therefore skipped without fetching or decoding their images.

    Every `iter_batches()` call streams the slide from its first row, so readers must
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
