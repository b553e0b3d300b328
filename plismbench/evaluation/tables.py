"""Human-readable tables of aggregated results (markdown and terminal)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from rich.table import Table
from tabulate import tabulate

from plismbench.metrics.catalogue import label


def summary_rows(
    results: pl.DataFrame, names: Sequence[str], centre: str = "median", spread: str = "iqr"
) -> list[list[str]]:
    """One row per pair type: ``centre (spread)`` of each metric, 3 decimals.

    The median is followed by its 95% interval ``[low, high]`` when ``results`` has one.
    """
    rows = []
    for ptype in results["pair_type"].unique(maintain_order=True).to_list():
        sub = results.filter(pl.col("pair_type") == ptype)
        cells = [f"{ptype} (n={sub['n_pairs'][0]})"]
        for name in names:
            r = sub.filter(pl.col("metric") == name).row(0, named=True)
            cell = f"{r[centre]:.3f}"
            low, high = r.get(f"{centre}_ci_low"), r.get(f"{centre}_ci_high")
            if low is not None and high is not None:
                cell += f" [{low:.3f}, {high:.3f}]"
            cells.append(f"{cell} ({r[spread]:.3f})")
        rows.append(cells)
    return rows


def results_markdown(results: pl.DataFrame, names: Sequence[str], title: str) -> str:
    """``results.md``: the median (IQR) table, then mean (std)."""
    headers = ["Pair type", *(label(n) for n in names)]
    med = tabulate(summary_rows(results, names), headers, tablefmt="github")
    mean = tabulate(summary_rows(results, names, "mean", "std"), headers, tablefmt="github")
    return (
        f"# {title}\n\n## Median [95% CI] (IQR) over slide pairs\n\n{med}\n\n"
        "The interval comes from a bootstrap over stainings and scanners (docs/statistics.md)."
        "\n\n"
        f"## Mean (std) over slide pairs\n\n{mean}\n"
    )


def results_rich(results: pl.DataFrame, names: Sequence[str], title: str) -> Table:
    """The median (IQR) table for the terminal."""
    table = Table(title=title, title_justify="left")
    table.add_column("Pair type", style="bold")
    for n in names:
        table.add_column(label(n), justify="right")
    for row in summary_rows(results, names):
        table.add_row(*row)
    return table

