"""Option declarations shared by several commands (one wording, one place)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: The four tile sources; ``plismbench.data.sources.open_source`` checks that one is given.
DownloadDir = Annotated[Path | None, typer.Option("--download-dir", help="Local PLISM h5 files.")]
Streaming = Annotated[
    bool, typer.Option("--streaming", help="Stream tiles from the Hugging Face Hub.")
]
TilesDir = Annotated[Path | None, typer.Option("--tiles-dir", help="A folder of tile images.")]
Parquet = Annotated[Path | None, typer.Option("--parquet", help="Parquet tile files.")]

#: Where evaluate wrote its metrics, and which tile count to read there.
MetricsDir = Annotated[Path, typer.Option(help="The --metrics-dir given to evaluate.")]
NTilesFolder = Annotated[
    int | None, typer.Option(help="Which <n>_tiles folder (default: the only one, or 8139).")
]
