"""Rank every evaluated model by the reference leaderboard metric.

The metric is the mean of four medians over slide pairs: cosine similarity over all
pairs, and top-10 accuracy over cross-scanner, cross-staining and cross-scanner,
cross-staining pairs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
from tabulate import tabulate

from plismbench.errors import InputError
from plismbench.evaluate.subset import DEFAULT_N_TILES
from plismbench.metrics.aggregate import leaderboard_components
from plismbench.utils.io import atomic_path, write_text

LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"


def available_n_tiles(metrics_dir: Path) -> list[int]:
    """Tile counts with evaluated models under ``metrics_dir``."""
    found = []
    for p in metrics_dir.glob("*_tiles"):
        m = re.fullmatch(r"(\d+)_tiles", p.name)
        if m and p.is_dir():
            found.append(int(m.group(1)))
    return sorted(found)


def resolve_n_tiles(metrics_dir: Path, n_tiles: int | None) -> int:
    """The tile count to rank: given, the only one, or 8,139 when several exist."""
    options = available_n_tiles(metrics_dir)
    if n_tiles is not None:
        if n_tiles not in options:
            raise InputError(
                f"{metrics_dir}/{n_tiles}_tiles: no evaluated models (found {options})"
            )
        return n_tiles
    if len(options) == 1:
        return options[0]
    if DEFAULT_N_TILES in options:
        return DEFAULT_N_TILES
    if not options:
        raise InputError(f"{metrics_dir}: no '<n>_tiles' folders; run 'plismbench evaluate' first")
    raise InputError(f"{metrics_dir}: several tile counts {options}; choose one with --n-tiles")


def leaderboard(
    metrics_dir: str | os.PathLike[str], n_tiles: int | None = None, *, write: bool = True
) -> pl.DataFrame:
    """One row per evaluated model, best first, at full precision.

    Columns: ``rank, model, cosine_similarity_all, top_10_cross_scanner,
    top_10_cross_staining, top_10_cross_scanner_cross_staining, leaderboard_metric``.
    Writes ``leaderboard.csv`` and ``leaderboard.md`` in ``<metrics_dir>/<n>_tiles/``.
    """
    root = Path(metrics_dir)
    if not root.is_dir():
        raise InputError(f"{root}: metrics directory not found")
    n = resolve_n_tiles(root, n_tiles)
    base = root / f"{n}_tiles"
    rows = []
    for model_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if not (model_dir / "run.json").is_file():
            continue  # unfinished evaluation
        try:
            results = pl.read_csv(model_dir / "results.csv")
            run = json.loads((model_dir / "run.json").read_text())
            components = leaderboard_components(results)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            raise InputError(
                f"{model_dir}: unreadable evaluation outputs ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); re-run evaluate with --overwrite"
            ) from None
        if 10 not in run.get("top_k", []):
            raise InputError(
                f"{model_dir}: evaluated without k=10; re-run evaluate with --top-k including 10"
            )
        rows.append({"model": model_dir.name, **components})
    if not rows:
        raise InputError(f"{base}: no finished evaluations (no run.json)")
    board = (
        pl.DataFrame(rows)
        .sort("leaderboard_metric", descending=True, nulls_last=True)
        .with_row_index("rank", offset=1)
    )
    board = board.with_columns(pl.col("rank").cast(pl.Int64))
    if write:
        with atomic_path(base / LEADERBOARD_CSV) as tmp:
            board.write_csv(tmp)
        write_text(base / LEADERBOARD_MD, leaderboard_markdown(board, n))
    return board


def leaderboard_markdown(board: pl.DataFrame, n_tiles: int) -> str:
    """The leaderboard as a markdown table (3 decimals; the CSV has full precision)."""
    headers = [
        "Rank", "Model", "Cosine (all)", "Top-10 cross-scanner", "Top-10 cross-staining",
        "Top-10 cross-both", "Leaderboard metric",
    ]  # fmt: skip
    table = tabulate(board.rows(), headers, tablefmt="github", floatfmt=".3f")
    return f"# Leaderboard ({n_tiles} tiles per slide)\n\n{table}\n"
