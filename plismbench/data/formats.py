"""Stored tile formats, written once: image suffixes and the tiles-dataset parquet schema."""

from __future__ import annotations

import json
from typing import Any

#: Image suffixes every reader accepts (tile folders, corpora, tar members, manifests).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")

#: Columns of the tiles-dataset parquet schema (owkin/plism-dataset-tiles) that readers need.
TILE_COLUMNS: tuple[str, ...] = ("slide_id", "tile_id", "png")
#: The image column: the HF ``Image`` struct ``{"bytes", "path"}``.
IMAGE_COLUMN: str = "png"

#: Hugging Face ``datasets`` features of the tiles-dataset schema (as the Hub dataset writes).
HF_FEATURES: dict[str, dict[str, str]] = {
    "slide_id": {"dtype": "string", "_type": "Value"},
    "tile_id": {"dtype": "string", "_type": "Value"},
    "png": {"_type": "Image"},
    "stainer": {"dtype": "string", "_type": "Value"},
    "scanner": {"dtype": "string", "_type": "Value"},
}


def tiles_schema() -> Any:
    """The arrow schema of the tiles dataset (``png`` as the HF Image struct)."""
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {"Value": pa.string(), "Image": image}
    return pa.schema(
        [(name, types[spec["_type"]]) for name, spec in HF_FEATURES.items()],
        metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})},
    )
