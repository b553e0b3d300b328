"""CLI command ``run``: the whole benchmark in one command (thin over plismbench.pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, err_console


@app.command()
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
    output_dir: Annotated[Path, typer.Option(help="Where everything goes.")] = Path(
        "plismbench-results"
    ),
    n_tiles: Annotated[str | None, typer.Option(help="Tiles per slide for evaluate.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Extraction batch size.")] = 64,
    workers: Annotated[int | None, typer.Option(help="CPU threads / reader workers.")] = None,
    keep_data: Annotated[
        bool, typer.Option(help="Keep the demo's synthetic tiles after extraction.")
    ] = False,
    distill_demo: Annotated[
        bool,
        typer.Option(
            help="Demo only: also distil the random ViT into a ViT-Tiny student (a few CPU "
            "minutes) and compare them."
        ),
    ] = False,
    dataset: Annotated[
        str, typer.Option(help="plism, or scorpion (with --source synthetic or its folder).")
    ] = "plism",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable results only.")
    ] = False,
) -> None:
    """Run the whole benchmark: data -> extract -> evaluate -> leaderboard -> report.

    With no --model and no --source it runs an offline demo in a few minutes on a CPU.
    """
    from plismbench.pipeline import REAL_COMMAND
    from plismbench.pipeline import run as run_pipeline
    from plismbench.stats.leaderboard import leaderboard_rich

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
