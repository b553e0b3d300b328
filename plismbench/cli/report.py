"""CLI command ``report`` (a thin wrapper over :func:`plismbench.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, examples
from plismbench.cli.options import MetricsDir, NTilesFolder

stdout = Console()


@app.command(epilog=examples(
    "plismbench report --metrics-dir METRICS",
    "plismbench report --metrics-dir METRICS --n-tiles 460 --out report.html",
))
def report(
    metrics_dir: MetricsDir,
    n_tiles: NTilesFolder = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The HTML file (default: METRICS/<n>_tiles/report.html)."),
    ] = None,
) -> None:
    """A self-contained HTML report: leaderboard with CIs, comparisons, published scores,
    scatter, distributions, heatmaps, provenance; figures also as PNG, SVG and PDF."""
    from plismbench.reporting import files_dir
    from plismbench.reporting import report as make_report

    path = make_report(metrics_dir, n_tiles=n_tiles, out=out)
    stdout.print(
        f"Report in [bold]{path}[/] (figures as PNG, SVG and PDF in {files_dir(path)}/; "
        "a results.json bundle in each model's folder).",
        highlight=False,
    )
