"""Rank every evaluated model by the reference leaderboard metric, with its uncertainty.

The metric is the mean of four medians over slide pairs: cosine similarity over all
pairs, and top-10 accuracy over cross-scanner, cross-staining and cross-scanner,
cross-staining pairs.

Only comparable, complete evaluations are ranked together. Models evaluated on another
slide set, tile subset or top-k list than the ranked group are listed after it, in
their own group, with the reason; incomplete ones (a missing pair type, ``complete:
false`` in ``run.json``, no k=10) follow the complete ones, marked. A NaN score never
ranks first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl
from tabulate import tabulate

from plismbench.errors import InputError
from plismbench.metrics.catalogue import COMPONENT_LABELS, COMPONENTS, SCORE
from plismbench.stats.bootstrap import N_BOOT, SEED
from plismbench.stats.ranking import Entry, load_entry, order_entries
from plismbench.store.evaluation import (
    LEADERBOARD_CSV,
    LEADERBOARD_MD,
    RUN_FILE,
    resolve_n_tiles,
    tiles_dir,
)
from plismbench.utils.io import atomic_path, write_text

NAN = float("nan")
#: Significance level of the groups of models not significantly different.
ALPHA = 0.05
#: Columns of the leaderboard, in order.
COLUMNS = (
    "rank", "model", *COMPONENT_LABELS, SCORE, f"{SCORE}_ci_low", f"{SCORE}_ci_high",
    "group", "status", "complete", "note", "n_slides",
    *(f"{c}_ci_{side}" for c in COMPONENT_LABELS for side in ("low", "high")),
    "rank_ci_low", "rank_ci_high", "p_beats_next",
)  # fmt: skip


def leaderboard(
    metrics_dir: str | os.PathLike[str],
    n_tiles: int | None = None,
    *,
    write: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> pl.DataFrame:
    """One row per evaluated model: ranked group first (best first), then the others.

    Columns: :data:`COLUMNS`. ``*_ci_low`` / ``*_ci_high`` are the 95% intervals of the
    score and of its four components, from the hierarchical bootstrap over stainings
    and scanners (``n_boot=0``: no intervals);
    ``group`` numbers the ranked models so that a model is not significantly different
    from the first model of its group (Holm-corrected, alpha 0.05); ``status`` is
    ``ranked``, ``incomplete`` or ``separate`` and ``note`` says why; ``complete`` is
    false for a missing pair type, no k=10, a NaN score or ``complete: false`` in
    ``run.json`` (a PLISM store missing slides). Writes
    ``leaderboard.csv`` (full precision) and ``leaderboard.md`` in ``<metrics_dir>/<n>_tiles/``.
    """
    root = Path(metrics_dir)
    if not root.is_dir():
        raise InputError(f"{root}: metrics directory not found")
    n = resolve_n_tiles(root, n_tiles)
    base = tiles_dir(root, n)
    entries = [
        load_entry(p) for p in sorted(base.iterdir()) if p.is_dir() and (p / RUN_FILE).is_file()
    ]
    if not entries:
        raise InputError(f"{base}: no finished evaluations (no run.json)")
    ordered = order_entries(entries, n_boot=n_boot, seed=seed, alpha=ALPHA)
    board = pl.DataFrame(
        [_row(e) for e in ordered],
        schema={c: _dtype(c) for c in COLUMNS},
    )
    if write:
        with atomic_path(base / LEADERBOARD_CSV) as tmp:
            board.write_csv(tmp)
        write_text(base / LEADERBOARD_MD, leaderboard_markdown(board, n))
    return board


def _dtype(column: str) -> type[pl.DataType]:
    if column == "complete":
        return pl.Boolean
    if column in ("rank", "n_slides", "group"):
        return pl.Int64
    return pl.String if column in ("model", "status", "note") else pl.Float64


def _row(e: Entry) -> dict[str, object]:
    return {
        "rank": e.rank,
        "model": e.name,
        **e.components,
        f"{SCORE}_ci_low": e.ci[0],
        f"{SCORE}_ci_high": e.ci[1],
        "group": e.group,
        "status": e.status,
        "complete": e.complete and not e.partial,
        "note": e.note,
        "n_slides": e.n_slides,
        **{
            f"{k}_ci_{side}": e.component_ci.get(k, (NAN, NAN))[i]
            for k in e.components if k != SCORE
            for i, side in enumerate(("low", "high"))
        },
        "rank_ci_low": e.rank_ci[0],
        "rank_ci_high": e.rank_ci[1],
        "p_beats_next": e.p_beats_next,
    }


def fmt_score(value: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``0.541 [0.512, 0.566]`` (3 decimals), ``n/a`` for a missing value."""
    if value is None or value != value:
        return "n/a"
    if lo is None or hi is None or lo != lo or hi != hi:
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def fmt_rank(r: dict[str, Any]) -> str:
    """``2 [1-3]``: the rank and its 95% interval; empty for a model that is not ranked."""
    if r["rank"] is None:
        return ""
    lo, hi = r.get("rank_ci_low"), r.get("rank_ci_high")
    if lo is None or hi is None or lo != lo or hi != hi:
        return str(r["rank"])
    return f"{r['rank']} [{int(lo)}-{int(hi)}]"


def _score_cells(r: dict[str, Any]) -> list[str]:
    """The four components, then the score with its interval."""
    return [
        *(fmt_score(r[c]) for c in COMPONENT_LABELS),
        fmt_score(r[SCORE], r[f"{SCORE}_ci_low"], r[f"{SCORE}_ci_high"]),
    ]


def leaderboard_markdown(board: pl.DataFrame, n_tiles: int) -> str:
    """The leaderboard as a markdown table (3 decimals; the CSV has full precision)."""
    headers = [
        "Rank [95% CI]", "Model", *(c.header for c in COMPONENTS), "Leaderboard metric [95% CI]",
        "Group", "Status",
    ]  # fmt: skip
    rows = []
    for r in board.iter_rows(named=True):
        rows.append(
            [
                fmt_rank(r), r["model"], *_score_cells(r),
                "" if r["group"] is None else r["group"],
                r["status"] if not r["note"] else f"{r['status']}: {r['note']}",
            ]
        )  # fmt: skip
    table = tabulate(rows, headers, tablefmt="github", disable_numparse=True)
    return (
        f"# Leaderboard ({n_tiles} tiles per slide)\n\n{table}\n\n"
        "Models in the same group are not significantly different from the group's first "
        "model (hierarchical bootstrap over stainings and scanners, Holm-corrected, "
        "alpha 0.05). Tied scores share a rank; the rank's interval is over the paired "
        "resamples (leaderboard.csv: rank_ci_low, rank_ci_high, and p_beats_next, the "
        "probability that a model beats the next one). Incomplete and separate models "
        "are not ranked against the others.\n"
    )


def leaderboard_rich(board: pl.DataFrame, title: str) -> Any:
    """The leaderboard for the terminal: 3 decimals, the score's 95% CI, group and status."""
    from rich import box
    from rich.table import Table

    # 80 columns must stay readable: light borders, and Status only when a row needs it
    with_status = any(r["status"] != "ranked" or r["note"] for r in board.iter_rows(named=True))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for label in ("#", "Model", *(c.short for c in COMPONENTS), "Score [95% CI]", "Grp"):
        model = label == "Model"
        table.add_column(label, justify="left" if model else "right", no_wrap=not model,
                         overflow="fold" if model else "ellipsis", min_width=len(label))
    if with_status:
        table.add_column("Status")
    for r in board.iter_rows(named=True):
        status = r["status"] if not r["note"] else f"{r['status']}: {r['note']}"
        style = None if r["status"] == "ranked" else "dim"
        cells = [
            "" if r["rank"] is None else str(r["rank"]), r["model"], *_score_cells(r),
            "" if r["group"] is None else str(r["group"]),
        ]  # fmt: skip
        table.add_row(*cells, *([status] if with_status else []), style=style)
    table.caption = (
        "Score = mean of the median cosine (Cos, all pairs) and the median top-10 accuracy "
        "cross-scanner (Scan), cross-staining (Stain) and both (Both); 95% CI "
        "from a bootstrap over stainings and scanners. Grp: models not significantly "
        "different from their group's first model. Full precision in leaderboard.csv."
    )
    return table
