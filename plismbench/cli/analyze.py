"""CLI command ``analyze`` (a thin wrapper over :func:`plismbench.analyze`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, examples
from plismbench.cli.options import (
    Device,
    FeaturesDir,
    ModelFolders,
    NTiles,
    Overwrite,
    Quiet,
    TileSubset,
    out_dir_option,
)

stdout = Console()


@app.command(epilog=examples(
    "plismbench analyze -m h0-mini -m uni2-h --features-dir FEATURES -o ANALYSIS",
    "plismbench analyze -m student --reference-model h0-mini \\\n"
    "      --features-dir FEATURES -o ANALYSIS --layers all",
))
def analyze(
    model: ModelFolders,
    features_dir: FeaturesDir,
    out_dir: Annotated[Path, out_dir_option("Tables go to OUT_DIR/<model>/*.csv.")],
    n_tiles: NTiles = None,
    tile_subset: TileSubset = None,
    sample_tiles: Annotated[
        int, typer.Option(help="Tile locations (of those) for probes, neighbours, RI and CKA.")
    ] = 460,
    k: Annotated[int, typer.Option("--k", help="Neighbours per tile.")] = 10,
    layers: Annotated[
        str | None,
        typer.Option(help="'all' or e.g. 4,8,12 (default: every layer extracted, if any)."),
    ] = None,
    reference_model: Annotated[
        str | None, typer.Option(help="Compare each --model with this one (CKA, angles).")
    ] = None,
    folds: Annotated[
        int, typer.Option(help="Grouped cross-validation folds of the probes (at least 2).")
    ] = 5,
    no_ri: Annotated[
        bool, typer.Option("--no-ri", help="Skip PathoROB's robustness index (croma).")
    ] = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Why is a model robust? Variance decomposition, nuisance probes, neighbourhoods, geometry."""
    from plismbench.analysis import analyze as run_analyze

    result = run_analyze(
        model,
        features_dir,
        out_dir,
        reference_model=reference_model,
        n_tiles=n_tiles,
        tile_subset=tile_subset,
        sample_tiles=sample_tiles,
        k=k,
        layers=layers,
        folds=folds,
        robustness_index=not no_ri,
        device=device,
        overwrite=overwrite,
        log=None if quiet else (lambda message: stdout.print(message, highlight=False)),
    )
    variance = result.tables.get("variance")
    if variance is not None:
        import polars as pl

        stdout.print("Variance fractions (final features):")
        for name in result.models:
            part = variance.filter(
                pl.col("main") & (pl.col("layer") == "final") & (pl.col("model") == name)
            )
            text = ", ".join(
                f"{c} {f:.3f} (chance {ch:.3f})"
                for c, f, ch in zip(
                    part["component"], part["fraction"], part["chance"], strict=True
                )
            )
            stdout.print(f"  {name}: {text}", highlight=False)
    reused = f"; reused: {', '.join(result.reused)}" if result.reused else ""
    stdout.print(f"Tables in [bold]{result.out_dir}[/]{reused}.", highlight=False)
