"""CLI commands for the data stage: ``download`` and ``synth`` (see plismbench.data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plismbench.cli.app import app, err_console, examples
from plismbench.cli.options import old_name, renamed, require
from plismbench.data.catalogue import N_TILES
from plismbench.errors import InputError


def _split(value: str | None) -> list[str] | None:
    """``"GIV,GM"`` -> ``["GIV", "GM"]``; None stays None (meaning all)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command(epilog=examples(
    "plismbench download --download-dir PLISM",
    "plismbench download --download-dir PLISM --stainings GIV,GM --scanners AT2",
))
def download(
    download_dir: Path = typer.Option(..., "--download-dir", help="Folder for the h5 files."),
    workers: int = typer.Option(8, "--workers", min=1, help="Files fetched in parallel."),
    stainings: str | None = typer.Option(
        None, "--stainings", help="Comma-separated stainings, e.g. GIV,GM (default: all 13)."
    ),
    scanners: str | None = typer.Option(
        None, "--scanners", help="Comma-separated scanners, e.g. AT2,S60 (default: all 7)."
    ),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (default: main)."),
    expect_tiles: int = typer.Option(
        N_TILES, "--expect-tiles", help="Tiles each file must hold (0: do not check the count)."
    ),
    dataset: str = typer.Option(
        "plism", "--dataset", help="plism, scorpion (Zenodo), or a manifest .csv/.yaml to check."
    ),
) -> None:
    """Download the PLISM h5 files (owkin/plism-dataset, ~2.5 GB each), resumably, then verify them.

    The Hub token comes from HF_TOKEN or `hf auth login`; run the same command again to resume.
    `--dataset scorpion` fetches SCORPION from Zenodo instead (md5-checked, resumable); a
    manifest is validated (nothing to download).
    """
    from plismbench.data.download import download as run

    report = run(
        download_dir,
        stainings=_split(stainings),
        scanners=_split(scanners),
        workers=workers,
        revision=revision,
        n_tiles=expect_tiles or None,
        dataset=dataset,
    )
    if not report.complete:
        raise InputError(report.summary() + "; run the same command again to resume")
    err_console.print(report.summary(), highlight=False)


@app.command(epilog=examples(
    "plismbench synth -o SYNTH --tiles 16 --format h5,folder",
    "plismbench extract -m rgb-histogram --download-dir SYNTH -o FEATURES",
))
def synth(
    out_dir: Path | None = typer.Option(None, "--out-dir", "-o", help="Output folder."),
    out_old: Annotated[Path | None, old_name("--out")] = None,
    tiles: int | None = typer.Option(
        None, "--tiles", min=1, help="Tiles per slide (default 32, or all images of --from)."
    ),
    stainings: str | None = typer.Option(
        None, "--stainings", help="Comma-separated stainings (default: all 13)."
    ),
    scanners: str | None = typer.Option(
        None, "--scanners", help="Comma-separated scanners (default: all 7)."
    ),
    from_dir: Path | None = typer.Option(
        None, "--from", help="Use your own tiles (a folder of .png/.jpg/.tif) instead of the asset."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same data."),
    fmt: str = typer.Option(
        "h5",
        "--format",
        help="Comma-separated: h5 (OUT/{slide}.h5), parquet (OUT/parquet/data/), "
        "folder (OUT/tiles/{slide}/{tile}.png).",
    ),
    dataset: str = typer.Option(
        "plism", "--dataset", help="plism, or scorpion (OUT/slide_{i}/sample_{j}/{scanner}.jpg)."
    ),
) -> None:
    """Write a synthetic registered PLISM: real H&E under simulated stainings and scanners.

    `--dataset scorpion` writes a SCORPION-shaped demo instead: 5 simulated scanners.
    """
    from plismbench.data.synth import synth as run

    out = require(renamed(out_dir, out_old, "--out", "--out-dir"), "--out-dir")
    if dataset.lower() == "scorpion":
        path = run(out, seed=seed, dataset=dataset)
        err_console.print(f"synthetic SCORPION written to {path}", highlight=False)
        return
    formats = _split(fmt) or []
    path = run(
        out,
        n_tiles=tiles,
        stainings=_split(stainings),
        scanners=_split(scanners),
        from_dir=from_dir,
        seed=seed,
        formats=formats,
    )
    err_console.print(f"synthetic PLISM ({', '.join(formats)}) written to {path}", highlight=False)
