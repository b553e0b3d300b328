"""The reference leaderboard's published scores, shipped as data, and a run beside them.

``published.json`` holds the table of the owkin/plism-benchmark README (16 models: the
"On 03/03/2025" table plus GenBio-PathFM, added at #2 in April 2026; 8,139 tiles per slide,
4,095 slide pairs) with our registry's model names and the upstream commit it was read at.
The figures are rounded to 3 decimals as published; see ``docs/published.md`` for the agreement to
expect and why a faithful run can differ.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import polars as pl

#: The five published values, as leaderboard columns.
VALUES = (
    "cosine_similarity_all", "top_10_cross_scanner", "top_10_cross_staining",
    "top_10_cross_scanner_cross_staining", "leaderboard_metric",
)  # fmt: skip
#: Short labels of :data:`VALUES`.
LABELS = {
    "cosine_similarity_all": "Cosine",
    "top_10_cross_scanner": "T10 scan",
    "top_10_cross_staining": "T10 stain",
    "top_10_cross_scanner_cross_staining": "T10 both",
    "leaderboard_metric": "Score",
}


@cache
def published_source() -> dict[str, Any]:
    """The whole ``published.json``: source, date, tile count, rounding and models."""
    text = resources.files("plismbench.stats").joinpath("published.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def published_table() -> pl.DataFrame:
    """One row per published model: ``rank, model, published_name`` and :data:`VALUES`."""
    rows = published_source()["models"]
    return pl.DataFrame(rows).select("rank", "model", "published_name", *VALUES)


def normalise(name: str) -> str:
    """Names match loosely: case, and ``_``, spaces and ``-`` alike (``h0_mini``, ``Phikon v2``)."""
    return "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


def beside_published(board: pl.DataFrame) -> pl.DataFrame:
    """Each run of a published model beside its published row, with the difference.

    Columns: ``model, published_name, published_rank`` then, for each of :data:`VALUES`,
    ``<value>`` (this run), ``<value>_published`` and ``<value>_diff`` (run minus
    published). Models absent from the published table are left out.
    """
    published = {normalise(r["model"]): r for r in published_table().iter_rows(named=True)}
    aliases = {normalise(r["published_name"]): r for r in published_table().iter_rows(named=True)}
    rows = []
    for r in board.iter_rows(named=True):
        ref = published.get(normalise(r["model"])) or aliases.get(normalise(r["model"]))
        if ref is None:
            continue
        row: dict[str, Any] = {
            "model": r["model"], "published_name": ref["published_name"],
            "published_rank": ref["rank"],
        }  # fmt: skip
        for v in VALUES:
            mine = r.get(v)
            row[v] = mine
            row[f"{v}_published"] = ref[v]
            row[f"{v}_diff"] = None if mine is None else mine - ref[v]
        rows.append(row)
    if not rows:
        return pl.DataFrame(
            schema={"model": pl.String, "published_name": pl.String, "published_rank": pl.Int64}
        )
    return pl.DataFrame(rows)


def published_rich(board: pl.DataFrame, n_tiles: int) -> Any:
    """Terminal table: the published leaderboard, with this run's rows interleaved."""
    from rich.table import Table

    src = published_source()
    table = Table(
        title=f"Published leaderboard ({src['date']}, {src['n_tiles']:,} tiles) beside this run",
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("Model")
    for v in VALUES:
        table.add_column(LABELS[v], justify="right")
    runs: dict[str, list[dict[str, Any]]] = {}  # keyed by the published row each run matched
    for r in beside_published(board).iter_rows(named=True):
        runs.setdefault(r["published_name"], []).append(r)
    for ref in published_table().iter_rows(named=True):
        table.add_row(
            f"#{ref['rank']}", ref["published_name"], *(f"{ref[v]:.3f}" for v in VALUES)
        )
        for run in runs.get(ref["published_name"], []):
            cells = []
            for v in VALUES:
                value, diff = run[v], run[f"{v}_diff"]
                ok = value is not None and value == value
                cells.append(f"{value:.3f} ({diff:+.3f})" if ok else "n/a")
            table.add_row("", f"  this run: {run['model']}", *cells, style="bold cyan")
    note = (
        f"Source: {src['url']} (read {src['read_on']}; docs/published.md). "
        "This run's value (difference to the published one). "
        "A faithful run differs by the reference's 3-decimal rounding, its float16 "
        "similarities and its self-match exclusion: docs/published.md says what to expect."
    )
    if n_tiles != src["n_tiles"]:
        warn = f"This run used {n_tiles} tiles per slide, not {src['n_tiles']:,}."
        note = f"[yellow]{warn}[/] {note}"
    table.caption = note
    return table
