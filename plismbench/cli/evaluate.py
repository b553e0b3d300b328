"""CLI commands ``evaluate`` and ``leaderboard`` (thin wrappers over the Python API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app
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


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Option("--model", "--extractor", "-m", help="Model folder under --features-dir.")
    ],
    features_dir: Annotated[Path, typer.Option(help="Root of <model>/<slide_id>/features.npy.")],
    metrics_dir: Annotated[
        Path, typer.Option(help="Outputs go to <metrics-dir>/<n>_tiles/<model>/.")
    ],
    n_tiles: Annotated[
        str | None,
        typer.Option(
            help="Tiles per slide: 460, 2713, 5426, 8139, 16278, any n, or 'all'. "
            "Default: 8139 for full PLISM slides, else all."
        ),
    ] = None,
    top_k: Annotated[str, typer.Option(help="Comma-separated k for top-k accuracy.")] = "1,3,5,10",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
    tile_subset: Annotated[
        Path | None, typer.Option(help="A .npy of row indices to use instead of --n-tiles.")
    ] = None,
    save_ranks: Annotated[bool, typer.Option(help="Also save every tile's rank per pair.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Recompute from scratch.")] = False,
    allow_missing: Annotated[
        bool,
        typer.Option(help="Evaluate a PLISM store with fewer than its 91 slides (recorded)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Cosine similarity and exact top-k retrieval for every slide pair, aggregated by pair type.

    Under ``torchrun --nproc-per-node G -m plismbench evaluate ...`` the slide pairs and
    slides are split over the ranks; rank 0 writes the outputs and prints.
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


@app.command()
def leaderboard(
    metrics_dir: Annotated[Path, typer.Option(help="The --metrics-dir given to evaluate.")],
    n_tiles: Annotated[
        int | None, typer.Option(help="Which <n>_tiles folder (default: the only one, or 8139).")
    ] = None,
    published: Annotated[
        bool, typer.Option(help="Also show the published reference leaderboard beside this run.")
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
