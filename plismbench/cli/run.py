"""CLI command ``run``: the whole benchmark in one command (thin over plismbench.pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, err_console, examples
from plismbench.cli.options import (
    AsJson,
    Device,
    NTiles,
    Quiet,
    Workers,
    old_name,
    out_dir_option,
    renamed,
)


@app.command(epilog=examples(
    "plismbench run                      # the offline demo, a few CPU minutes",
    "plismbench run -m h0-mini --device cuda",
    "plismbench run -m h0-mini -m uni2-h --source streaming -o RESULTS",
))
def run(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model(s) to benchmark (repeat the option). None: the offline demo.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="hub (download), streaming, synthetic, or a local folder of h5, "
            "parquet or <slide_id>/ images. Default: hub with --model, else the demo."
        ),
    ] = None,
    output_dir: Annotated[Path, out_dir_option("Where everything goes.")] = Path(
        "plismbench-results"
    ),
    output_dir_old: Annotated[Path | None, old_name("--output-dir")] = None,
    n_tiles: NTiles = None,
    device: Device = "auto",
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", "-b", min=1,
            help="Tiles per forward pass; 64 (not extract's 256) so that every registry "
            "model of a multi-model run fits a 16 GB GPU.",
        ),
    ] = 64,
    workers: Workers = None,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep the demo's synthetic tiles after extraction.")
    ] = False,
    distill_demo: Annotated[
        bool,
        typer.Option(
            "--distill-demo",
            help="Demo only: also distil the random ViT into a ViT-Tiny student (a few CPU "
            "minutes) and compare them."
        ),
    ] = False,
    dataset: Annotated[
        str, typer.Option(help="plism, or scorpion (with --source synthetic or its folder).")
    ] = "plism",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Run the whole benchmark: data -> extract -> evaluate -> leaderboard -> report.

    With no --model and no --source it runs an offline demo in a few minutes on a CPU.
    """
    from plismbench.pipeline import REAL_COMMAND
    from plismbench.pipeline import run as run_pipeline
    from plismbench.stats.leaderboard import leaderboard_rich

    output_dir = renamed(None, output_dir_old, "--output-dir", "--out-dir") or output_dir
    silent = quiet or as_json
    result = run_pipeline(
        model,
        source=source,
        output_dir=output_dir,
        n_tiles=n_tiles,
        device=device,
        batch_size=batch_size,
        workers=workers,
        keep_data=keep_data, distill_demo=distill_demo, dataset=dataset,
        progress=not silent,
        log=None if silent else (lambda m: err_console.print(f"[dim]{m}[/]", highlight=False)),
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    out = Console()
    title = f"Leaderboard, {result.n_tiles} tiles per slide (full precision in leaderboard.csv)"
    table = leaderboard_rich(result.leaderboard, title)
    out.print(table)
    if result.report is not None:
        out.print(f"Report: [bold]{result.report}[/]", highlight=False)
    out.print(f"Everything else: [bold]{result.output_dir}[/]", highlight=False)
    if result.demo:
        out.print(
            "[yellow]These are DEMO results[/]: synthetic PLISM made from one CC0 H&E crop, "
            "weight-free colour-histogram baselines and a ViT-Tiny with RANDOM weights. "
            f"The real benchmark: [bold]{REAL_COMMAND}[/]",
            highlight=False,
        )
