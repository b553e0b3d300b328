"""``open_corpus``: a path, a glob or a PLISM tile source -> the matching :class:`TileCorpus`."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from plismbench.data.base import TileSource
from plismbench.distillation.corpus.base import IMAGE_SUFFIXES, TileCorpus, list_files
from plismbench.distillation.corpus.folder import FolderCorpus
from plismbench.distillation.corpus.h5 import H5Corpus
from plismbench.distillation.corpus.parquet import ParquetCorpus
from plismbench.distillation.corpus.plism import PlismCorpus, warn_plism
from plismbench.distillation.corpus.tar import TarCorpus
from plismbench.errors import InputError

__all__ = ["open_corpus"]

_SHARDS = {".parquet": "parquet", ".tar": "tar", ".h5": "h5", ".hdf5": "h5"}
_GLOB = set("*?[")
#: Compressed tar names: refused (tiles are read by offset).
_COMPRESSED_TAR = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")


def _refuse_compressed(path: Path) -> None:
    if path.name.lower().endswith(_COMPRESSED_TAR):
        raise InputError(
            f"{path}: a compressed tar cannot be read by offset; decompress it to an "
            f"uncompressed .tar shard (e.g. gunzip {path.name}) or pass a folder of images"
        )


def _first_kind(root: Path) -> str | None:
    """The kind of the first recognised file under ``root`` (sorted walk, hidden skipped)."""
    compressed = None
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            suffix = os.path.splitext(name)[1].lower()
            if suffix in _SHARDS:
                return _SHARDS[suffix]
            if suffix in IMAGE_SUFFIXES:
                return "folder"
            if compressed is None and name.lower().endswith(_COMPRESSED_TAR):
                compressed = Path(folder) / name
    if compressed is not None:
        _refuse_compressed(compressed)
    return None


def _build(kind: str, files: list[Path], root: Path, label: str, column: str) -> TileCorpus:
    if kind == "parquet":
        return ParquetCorpus(files, root, label, image_column=column)
    if kind == "tar":
        return TarCorpus(files, root, label)
    return H5Corpus(files, root, label, image_column=column)


def open_corpus(spec: str | Path | TileSource, *, image_column: str = "image") -> TileCorpus:
    """Open a tile corpus for distillation.

    ``spec``: a folder tree of images (any names), parquet shards with an ``image_column``,
    uncompressed webdataset-style ``.tar`` shards, ``.h5`` files of tiles (a file, a folder
    or a glob of shards), or a PLISM :class:`TileSource` (which warns: those are the
    benchmark's evaluation tiles). A folder's kind is that of the first image or shard file
    of its sorted walk; a folder of images takes every image of the tree.
    """
    if isinstance(spec, TileSource):
        return PlismCorpus(spec)
    text = str(spec)
    path = Path(spec)
    if not path.exists() and _GLOB & set(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        for f in files[:1]:
            _refuse_compressed(f)
        kinds = {_SHARDS.get(f.suffix.lower()) for f in files}
        if not files or None in kinds or len(kinds) != 1:
            raise InputError(
                f"{text}: the glob must match .parquet, .tar or .h5 shards of one kind "
                f"({len(files)} file(s) matched)"
            )
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        corpus = _build(kinds.pop(), files, root, text, image_column)  # type: ignore[arg-type]
    elif path.is_file():
        _refuse_compressed(path)
        kind = _SHARDS.get(path.suffix.lower())
        if kind is None:
            raise InputError(
                f"{path}: not a tile corpus (expected a folder, or .parquet, .tar or .h5 shards)"
            )
        corpus = _build(kind, [path], path.parent, text, image_column)
    elif path.is_dir():
        kind = _first_kind(path)
        if kind is None:
            raise InputError(
                f"{path}: no tiles found (no image, .parquet, .tar or .h5 file in the tree)"
            )
        if kind == "folder":
            corpus = FolderCorpus(path)
        else:
            suffixes = tuple(s for s, k in _SHARDS.items() if k == kind)
            corpus = _build(kind, list_files(path, suffixes), path, text, image_column)
    else:
        raise InputError(f"{path}: tile corpus not found")
    if corpus.is_plism and corpus.kind != "plism":
        warn_plism(corpus.path)
    return corpus
