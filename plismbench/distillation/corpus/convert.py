"""Rewrite any corpus as uncompressed webdataset tar shards, the format that reads at random.

Stored image bytes are copied as they are (no re-encoding) where the corpus keeps encoded
images (folders, parquet, tar); raw uint8 tiles (h5 arrays, PLISM sources) are written
as lossless PNG. Tile ``i`` of the corpus is tile ``i`` of the shards. Each shard is
written atomically and shards already there are kept, so an interrupted conversion
resumes where it stopped; ``corpus.json`` records the source (its digest) and the shard
size, and a folder written from another corpus is refused.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from PIL import Image

from plismbench.distillation.corpus.base import TileCorpus
from plismbench.errors import InputError
from plismbench.utils.io import atomic_path, write_json

__all__ = ["MANIFEST", "write_tar_shards"]

#: What a shard folder was written from: the source corpus's description and shard size.
MANIFEST = "corpus.json"

_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"II*\x00", "tif"), (b"MM\x00*", "tif"))


def _ext(data: bytes | None) -> str | None:
    """The file extension of encoded image bytes (sniffed), None when unknown."""
    if data is None:
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)


def _png(tile: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="PNG")  # type: ignore[arg-type]
    return buf.getvalue()


def _identity(manifest: object) -> tuple[object, ...] | None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("source"), dict):
        return None
    source = manifest["source"]
    keys = ("kind", "n_tiles", "digest")
    return (*(source.get(k) for k in keys), manifest.get("per_shard"))


def write_tar_shards(
    corpus: TileCorpus, out: str | os.PathLike[str], *, per_shard: int = 10_000, batch: int = 256
) -> list[Path]:
    """Write ``corpus`` as ``out/shard-000000.tar``, ... of ``per_shard`` tiles each."""
    if per_shard < 1 or batch < 1:
        raise InputError(f"per_shard ({per_shard}) and batch ({batch}) must be >= 1")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"source": corpus.describe(), "per_shard": per_shard}
    done = root / MANIFEST
    if done.exists():
        try:
            before = json.loads(done.read_text())
        except (OSError, ValueError):
            before = None
        if _identity(before) != _identity(manifest):  # the path may be spelt differently
            raise InputError(
                f"{root}: holds tar shards of another corpus or shard size ({done.name}); "
                "use a new folder"
            )
    elif any(root.glob("shard-*.tar")):
        raise InputError(f"{root}: holds tar shards without {MANIFEST}; use a new folder")
    write_json(done, manifest)
    n = len(corpus)
    shards = []
    for s, first in enumerate(range(0, n, per_shard)):
        path = root / f"shard-{s:06d}.tar"
        shards.append(path)
        if path.exists():
            continue  # written whole by an earlier run
        with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for b in range(first, min(first + per_shard, n), batch):
                ids = list(range(b, min(b + batch, first + per_shard, n)))
                blobs = corpus.read_encoded(ids)
                missing = [i for i, d in zip(ids, blobs, strict=True) if _ext(d) is None]
                made = dict(zip(missing, (_png(t) for t in corpus.read(missing)), strict=True))
                for i, stored in zip(ids, blobs, strict=True):
                    data = made.get(i, stored)
                    assert data is not None
                    info = tarfile.TarInfo(f"{i:010d}.{_ext(data)}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return shards
