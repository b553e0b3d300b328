"""CLI commands ``evaluate`` and ``leaderboard`` (thin wrappers over the Python API)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, examples
from plismbench.cli.options import (
    Device,
    FeaturesDir,
    MetricsDir,
    ModelFolder,
    NTiles,
    NTilesFolder,
    Overwrite,
    Quiet,
    TileSubset,
    Workers,
)
from plismbench.errors import InputError
from plismbench.utils.ranks import is_main_process

stdout = Console()
stderr = Console(stderr=True)


def parse_top_k(text: str) -> list[int]:
    """``"1,3,5,10"`` -> [1, 3, 5, 10]."""
    try:
        return [int(k) for k in text.replace(" ", "").split(",") if k]
    except ValueError:
        raise InputError(
            f"--top-k {text!r}: expected comma-separated integers, e.g. 1,3,5,10"
        ) from None


@app.command(epilog=examples(
    "plismbench evaluate -m h0-mini --features-dir FEATURES --metrics-dir METRICS",
    "torchrun --nproc-per-node 8 -m plismbench evaluate -m h0-mini \\\n"
    "      --features-dir FEATURES --metrics-dir METRICS --device cuda",
))
def evaluate(
    model: ModelFolder,
    features_dir: FeaturesDir,
    metrics_dir: MetricsDir,
    n_tiles: NTiles = None,
    top_k: Annotated[
        str, typer.Option("--top-k", metavar="K,K,...", help="The k of top-k accuracy.")
    ] = "1,3,5,10",
    device: Device = "auto",
    workers: Workers = None,
    tile_subset: TileSubset = None,
    save_ranks: Annotated[
        bool, typer.Option("--save-ranks", help="Also save every tile's rank per pair.")
    ] = False,
    overwrite: Overwrite = False,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing", help="Evaluate a PLISM store with fewer than its 91 slides."
        ),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Cosine similarity and exact top-k retrieval for every slide pair, by pair type.

    Under torchrun the slide pairs are split over the processes; rank 0 writes and prints.
    """

    from plismbench.evaluation import evaluate as run_evaluate
    from plismbench.evaluation.tables import results_rich

    main = is_main_process()

    result = run_evaluate(
        model,
        features_dir,
        metrics_dir,
        n_tiles=n_tiles,
        top_k=parse_top_k(top_k),
        device=device,
        workers=workers,
        tile_subset=tile_subset,
        overwrite=overwrite,
        save_ranks=save_ranks,
        progress=not quiet and main,
        allow_missing=allow_missing,
        notice=lambda line: stderr.print(line, highlight=False, soft_wrap=True),
    )
    if not main:
        return
    title = f"{model}: median (IQR) over slide pairs, {result.n_tiles} tiles per slide"
    stdout.print(results_rich(result.results, result.metric_names, title))
    note = (
        "already complete; reused" if result.reused else f"{result.pairs_computed} pairs computed"
    )
    stdout.print(f"Results in [bold]{result.output_dir}[/] ({note}).", highlight=False)


@app.command(epilog=examples(
    "plismbench leaderboard --metrics-dir METRICS",
    "plismbench leaderboard --metrics-dir METRICS --n-tiles 460 --published",
))
def leaderboard(
    metrics_dir: MetricsDir,
    n_tiles: NTilesFolder = None,
    published: Annotated[
        bool, typer.Option("--published", help="Also show the published reference leaderboard.")
    ] = False,
) -> None:
    """Rank evaluated models by the reference leaderboard metric."""
    from plismbench.stats.leaderboard import leaderboard as run_leaderboard
    from plismbench.stats.leaderboard import leaderboard_rich

    board = run_leaderboard(metrics_dir, n_tiles)
    stdout.print(leaderboard_rich(board, "Leaderboard"))
    if published:
        from plismbench.stats.published import published_rich
        from plismbench.store.evaluation import resolve_n_tiles

        stdout.print(published_rich(board, resolve_n_tiles(metrics_dir, n_tiles)))
