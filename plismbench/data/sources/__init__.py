"""The four tile sources: local h5 files, Hub streaming, an image folder, local parquet.

Every source yields, per slide, uint8 (B, H, W, 3) tiles in the canonical order (by (x, y) of
the tile ids) and checks that every slide holds the same tile ids. File handles are opened
lazily and per process, so a source can be pickled to DataLoader workers. One module per
source: ``h5``, ``streaming``, ``folder``, ``parquet``; what they share is in ``base``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from plismbench.data.base import TileSource
from plismbench.data.catalogue import TILES_REPO
from plismbench.data.formats import IMAGE_SUFFIXES
from plismbench.data.sources.folder import FolderSource, decode_image
from plismbench.data.sources.h5 import H5Source
from plismbench.data.sources.parquet import ParquetSource
from plismbench.data.sources.streaming import HubStreamingSource
from plismbench.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "FolderSource",
    "H5Source",
    "HubStreamingSource",
    "ParquetSource",
    "decode_image",
    "open_source",
]


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
