"""extract's defaults, in one torch-free place: :class:`ExtractConfig` and the CLI read them."""

from __future__ import annotations

#: Tiles per forward pass.
BATCH_SIZE = 256
#: Tile-reading threads (0 reads inline).
WORKERS = 4
#: Rows per resume checkpoint.
CHUNK_ROWS = 4096
#: Worst cosine to fp32 that ``--check-precision`` accepts.
PRECISION_THRESHOLD = 0.99
