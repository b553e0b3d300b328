"""Every option shared by several commands, declared once: one flag, one type, one help.

The vocabulary (one name per concept) is listed in ``docs/cli.md``; a test checks every
command against it. Old spellings stay as hidden aliases that warn (:func:`renamed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plismbench.cli.app import err_console

# -- where tiles come from (``plismbench.data.sources.open_source`` checks that one is given)
DownloadDir = Annotated[Path | None, typer.Option("--download-dir", help="Local PLISM h5 files.")]
Streaming = Annotated[
    bool, typer.Option("--streaming", help="Stream tiles from the Hugging Face Hub.")
]
TilesDir = Annotated[
    Path | None, typer.Option("--tiles-dir", help="A folder of tile images, TILES/<slide>/*.png.")
]
Parquet = Annotated[Path | None, typer.Option("--parquet", help="Parquet tile files.")]

# -- models and folders
Model = Annotated[
    str,
    typer.Option(
        "--model", "--extractor", "-m",
        help="Registry name (see 'plismbench models'), hf-hub:org/name or a folder exported "
        "by distill (--extractor: the reference's spelling)."
    ),
]  # fmt: skip
ModelFolder = Annotated[
    str,
    typer.Option(
        "--model", "--extractor", "-m",
        help="A model's folder name under --features-dir (--extractor: the reference's spelling).",
    ),
]
ModelFolders = Annotated[
    list[str],
    typer.Option("--model", "-m", help="A model's folder under --features-dir (repeat it)."),
]
FeaturesDir = Annotated[
    Path, typer.Option("--features-dir", help="Features: FEATURES/<model>/<slide>/features.npy.")
]
MetricsDir = Annotated[
    Path, typer.Option("--metrics-dir", help="Evaluations: METRICS/<n>_tiles/<model>/.")
]
#: Tile count of an evaluation (evaluate, analyze, run): a number or ``all``.
NTiles = Annotated[
    str | None,
    typer.Option(
        "--n-tiles", metavar="N|all",
        help="Tiles per slide: 460, 2713, 5426, 8139 (the reference subsets), any N or all. "
        "Default: 8139 on full PLISM slides, else all.",
    ),
]  # fmt: skip
#: Which ``<n>_tiles`` folder to read (leaderboard, compare, breakdown, report).
NTilesFolder = Annotated[
    int | None,
    typer.Option(
        "--n-tiles", metavar="N",
        help="Which METRICS/<N>_tiles folder (default: the only one, or 8139).",
    ),
]  # fmt: skip

TileSubset = Annotated[
    Path | None,
    typer.Option("--tile-subset", help="A .npy of tile row indices, instead of --n-tiles."),
]

# -- how to run
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
Workers = Annotated[
    int | None, typer.Option("--workers", "-w", min=0, help="Worker threads (default: all cores).")
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", "-b", min=1, help="Tiles per forward pass.")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Recompute what is done (otherwise it is reused).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress lines.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
Plugin = Annotated[
    list[str] | None,
    typer.Option("--plugin", help="A module (or .py file) that registers extractors (repeat it)."),
]
NBoot = Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples (0: none).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same result.")]


def out_dir_option(help: str, *, required: bool = False) -> typer.models.OptionInfo:
    """``--out-dir``: every command's output folder, with its own help text."""
    return typer.Option("--out-dir", "-o", help=help, show_default=not required)


def old_name(flag: str) -> Any:
    """A hidden, deprecated spelling of an option (see :func:`renamed`)."""
    return typer.Option(flag, hidden=True, help=f"Deprecated spelling ({flag}); see docs/cli.md.")


def renamed(new: Path | None, old: Path | None, old_flag: str, new_flag: str) -> Path | None:
    """The value of ``new_flag``, or of its deprecated spelling ``old_flag`` with a warning."""
    if old is None:
        return new
    err_console.print(
        f"[yellow]warning:[/] {old_flag} is deprecated; use {new_flag}", highlight=False
    )
    if new is not None and new != old:
        from plismbench.errors import InputError

        raise InputError(f"{old_flag} and {new_flag} name different folders; give {new_flag} only")
    return old


def require(value: Path | None, flag: str) -> Path:
    """A required option that has a deprecated alias (so typer cannot require it)."""
    if value is None:
        from plismbench.errors import InputError

        raise InputError(f"missing option {flag}")
    return value
