"""What produced a slide's features: the fingerprint a finished or partial slide must match.

A slide counts as done only if its ``meta.json`` names the same model, weights digest,
precision, preprocessing and tile source (``source_digest``: the slide's tile ids, their count
and the first tile's pixels, or the revision of a streamed source) as the current run;
anything else is refused (one line, ``--overwrite`` to replace), never silently reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plismbench.data.base import TileSource
from plismbench.errors import InputError
from plismbench.extractors.module import FeatureExtractor
from plismbench.utils.hashing import tensor_state_digest
from plismbench.utils.io import apply_umask, write_json

#: Keys of ``meta.json`` that must equal the current run's for a slide to be reused.
FINGERPRINT_KEYS = (
    "model",
    "weights_sha256",
    "precision",
    "pooling",
    "num_prefix_tokens",
    "embed_dim",
    "input_size",
    "resize",
    "interpolation",
    "normalise",
    "mean",
    "std",
    "source_digest",
    "hub_revision",
)
#: Keys whose absence in an older meta.json means ``None`` (not a difference by itself).
_ABSENT_IS_NONE = frozenset({"hub_revision"})


def weights_digest(extractor: FeatureExtractor) -> str:
    """sha256 of the backbone's weights, the same before and after ``torch.compile``."""
    backbone = getattr(extractor.backbone, "_orig_mod", extractor.backbone)
    state = backbone.state_dict()
    return tensor_state_digest({k.replace("_orig_mod.", ""): v for k, v in state.items()})


def fingerprint(
    extractor: FeatureExtractor, weights_sha: str, hub_revision: str | None = None
) -> dict[str, Any]:
    """The run's identity as stored in (and compared with) ``meta.json``.

    ``hub_revision`` is the Hub commit the weights came from: two revisions of one model are
    two settings, never mixed in one folder.
    """
    spec = extractor.spec
    return {
        "model": spec.name,
        "weights_sha256": weights_sha,
        "hub_revision": hub_revision,
        "precision": extractor.precision,
        "pooling": spec.pooling,
        "num_prefix_tokens": spec.num_prefix_tokens,
        "embed_dim": spec.embed_dim,
        "input_size": spec.input_size,
        "resize": spec.resize,
        "interpolation": spec.interpolation,
        "normalise": spec.normalise,
        "mean": [float(v) for v in spec.mean],
        "std": [float(v) for v in spec.std],
    }


def source_digest(source: TileSource, slide_id: str) -> str:
    """sha256 of what a slide's features are computed from, read in one tile at most.

    The tile ids (``coords``) and their count always; then the source's own revision when it
    names one (a Hub dataset commit), else the first tile's pixels, unless the source is
    streamed (``sequential``: a sample would cost a second pass over the slide).
    """
    coords = np.ascontiguousarray(np.asarray(source.coords(slide_id), dtype=np.int64))
    digest = hashlib.sha256(f"{slide_id}:{len(coords)}:".encode())
    digest.update(coords.tobytes())
    described = describe_source(source)
    revision = described.get("revision") if isinstance(described, dict) else None
    if revision:
        digest.update(f"revision:{revision}".encode())
    elif len(coords) and not getattr(source, "sequential", False):
        batches = source.iter_batches(slide_id, 1, 0)
        try:
            first = next(iter(batches))
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()
        tile = np.ascontiguousarray(np.asarray(first.tiles[:1], dtype=np.uint8))
        digest.update(f"tile:{tile.shape}".encode())
        digest.update(tile.tobytes())
    return digest.hexdigest()


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable ``key stored vs current`` for every fingerprint key that differs.

    Keys the current fingerprint does not carry are not compared (a folder's fingerprint has
    no ``source_digest``: that one is per slide).
    """
    out = []
    for key in FINGERPRINT_KEYS:
        if key not in current:
            continue
        absent = None if key in _ABSENT_IS_NONE else "<missing>"
        if stored.get(key, absent) != current.get(key):
            old, new = stored.get(key, absent), current.get(key)
            if key in ("weights_sha256", "source_digest", "hub_revision"):
                old, new = str(old)[:12], str(new)[:12]
            out.append(f"{key} {old} (this run: {new})")
    return out


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or ``None`` when the file is missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def refuse(path: Path, diffs: list[str], what: str = "was made by another setting") -> InputError:
    """The one line for a slide that does not match this run."""
    shown = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
    return InputError(f"{path} {what}: {shown}; use --overwrite to replace it")


def library_versions() -> dict[str, str]:
    """Versions recorded in ``meta.json``."""
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("plismbench", "timm", "numpy", "huggingface_hub", "safetensors", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
    return versions


def describe_source(source: TileSource) -> Any:
    """A JSON-friendly description of a source (its ``describe()`` if it has one)."""
    describe = getattr(source, "describe", None)
    if callable(describe):
        with contextlib.suppress(Exception):
            return describe()
    return {"type": type(source).__module__ + "." + type(source).__qualname__}


def build_meta(
    fp: dict[str, Any],
    extractor: FeatureExtractor,
    slide_id: str,
    tile_count: int,
    layers: list[int],
    source: TileSource,
    batch_size: int,
) -> dict[str, Any]:
    """``meta.json`` of a finished slide: the fingerprint plus provenance."""
    return {
        **fp,
        "slide_id": slide_id,
        "tile_count": tile_count,
        "layers": layers,
        "hub_id": extractor.spec.hub_id,
        "revision_requested": extractor.spec.revision,
        "pooling_reason": extractor.spec.pooling_reason,
        "precision_default": extractor.spec.dtype,
        "device": str(extractor.device),
        "batch_size": batch_size,
        "source": describe_source(source),
        "versions": library_versions(),
        "argv": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


FOLDER_FINGERPRINT = ".fingerprint.json"


def pin_folder(out_root: Path, fp: dict[str, Any], overwrite: bool) -> None:
    """Bind a model folder to one setting, so concurrent runs cannot mix settings across slides.

    The first run creates ``<model>/.fingerprint.json`` atomically (a hard link of a
    complete file); a later run with another model, weights, precision or preprocessing
    is refused with one line, or rebinds the folder with ``overwrite``.
    """
    path = out_root / FOLDER_FINGERPRINT
    fd, tmp = tempfile.mkstemp(prefix=".fingerprint.", suffix=".tmp", dir=out_root)
    apply_umask(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(fp, indent=2) + "\n")
        try:
            os.link(tmp, path)  # atomic, fails when the file exists
            return
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    stored = read_json(path)
    diffs = ["unreadable"] if stored is None else differences(stored, fp)
    if not diffs:
        return
    if not overwrite:
        raise refuse(path, diffs, "binds this folder to another setting")
    write_json(path, fp)
