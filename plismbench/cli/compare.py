"""CLI command ``compare``: paired comparisons of models (thin over plismbench.stats.compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, examples
from plismbench.cli.options import MetricsDir, NTilesFolder
from plismbench.stats.bootstrap import N_BOOT, SEED

stdout = Console()


@app.command(epilog=examples(
    "plismbench compare h0-mini uni2-h --metrics-dir METRICS",
    "plismbench compare h0-mini uni2-h virchow2 --metrics-dir METRICS",
))
def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more model folders to compare.")],
    metrics_dir: MetricsDir,
    n_tiles: NTilesFolder = None,
    out: Annotated[
        Path | None,
        typer.Option(help="CSV to write (default: <metrics-dir>/<n>_tiles/compare.csv)."),
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = N_BOOT,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = SEED,
    correction: Annotated[
        str,
        typer.Option(help="Multiple-testing correction: holm (family-wise) or bh (FDR)."),
    ] = "holm",
) -> None:
    """Paired differences on the same slide pairs, with CIs, P(A > B) and corrected tests."""
    import numpy as np
    from rich.table import Table

    from plismbench.stats.compare import compare_entries, leaderboard_rows, load_models
    from plismbench.stats.multitest import adjust
    from plismbench.store.evaluation import tiles_dir
    from plismbench.utils.io import atomic_path

    adjust(np.array([]), correction)  # an unknown correction: one line, before any computation
    n, entries = load_models(metrics_dir, models, n_tiles)
    table = compare_entries(entries, n_boot=n_boot, seed=seed, correction=correction)
    path = out or tiles_dir(metrics_dir, n) / "compare.csv"
    with atomic_path(path) as tmp:
        table.write_csv(tmp)
    view = Table(title=f"Paired comparisons, {n} tiles per slide", title_justify="left")
    tag = {"holm": "Holm", "bh": "BH"}[correction]
    for label in ("A", "B", "Metric", "Pairs", "A", "B", "A - B [95% CI]", "P(A>B)",
                  f"p boot ({tag})", f"p Wilcoxon ({tag})", "Sig."):  # fmt: skip
        view.add_column(label, justify="left" if label in ("A", "B", "Metric") else "right")
    view.columns[4].header, view.columns[5].header = "median A", "median B"
    for r in leaderboard_rows(table).iter_rows(named=True):
        metric = "score" if r["pair_type"] == "score" else f"{r['metric']} {r['pair_type']}"
        diff = "n/a" if _nan(r["difference"]) else (
            f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        )
        sig = "n/a" if r["significant"] is None else "yes" if r["significant"] else "no"
        view.add_row(
            r["model_a"], r["model_b"], metric.replace("_accuracy", ""), str(r["n_pairs"]),
            _fmt(r["median_a"], ".3f"), _fmt(r["median_b"], ".3f"), diff,
            _fmt(r["p_a_better"], ".2f"), _fmt(r["p_bootstrap_adj"], ".3g"),
            _fmt(r["p_wilcoxon_pairs_adj"], ".2g"), sig,
        )  # fmt: skip
    view.caption = (
        "p boot: bootstrap over stainings and scanners (the units of replication), the "
        "inverse of the interval. P(A>B): share of paired resamples where A is better. "
        "p Wilcoxon: signed-rank over slide pairs as in the H0-mini paper; it treats pairs "
        f"as independent, so it is far too optimistic. Both {tag}-corrected across the "
        "comparisons; n/a: undefined (a NaN among the pairs). Every metric and pair type "
        "in the CSV, with the worst-10% means (statistic worst10_mean)."
    )
    stdout.print(view)
    stdout.print(f"All comparisons in [bold]{path}[/]", highlight=False)


def _nan(value: float | None) -> bool:
    return value is None or value != value


def _fmt(value: float | None, spec: str) -> str:
    """``n/a`` for an undefined value (the package's one NaN policy)."""
    return "n/a" if _nan(value) else format(value, spec)


@app.command(epilog=examples(
    "plismbench breakdown h0-mini --metrics-dir METRICS",
    "plismbench breakdown h0-mini --metrics-dir METRICS --tissue-map tissues.csv",
))
def breakdown(
    model: Annotated[str, typer.Argument(help="Model folder under <metrics-dir>/<n>_tiles/.")],
    metrics_dir: MetricsDir,
    n_tiles: NTilesFolder = None,
    tissue_map: Annotated[
        Path | None,
        typer.Option(help="CSV with x, y, tissue columns (needs evaluate --save-ranks)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="CSV to write (default: <model folder>/breakdown.csv)."),
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = N_BOOT,
    min_coverage: Annotated[
        float,
        typer.Option(help="Refuse a tissue map covering less than this share of the tiles."),
    ] = 0.0,
) -> None:
    """Medians per staining, per scanner (and per tissue), each with its 95% CI."""
    import warnings

    import polars as pl
    from rich.table import Table

    from plismbench.stats.model_breakdown import breakdown as run_breakdown

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table, path = run_breakdown(model, metrics_dir, n_tiles, tissue_map, out, n_boot,
                                    min_coverage)  # fmt: skip
    for w in caught:
        Console(stderr=True, soft_wrap=True).print(f"warning: {w.message}", highlight=False)
    view = Table(title=f"{model}: top-10 accuracy by condition (median [95% CI])",
                 title_justify="left")  # fmt: skip
    view.add_column("By")
    view.add_column("Level")
    types = [t for t in ("cross-scanner", "cross-staining", "cross-scanner-cross-staining")
             if t in set(table["pair_type"])]  # fmt: skip
    for t in types:
        view.add_column(t.replace("cross-scanner-cross-staining", "cross-both"), justify="right")
    top = table.filter(pl.col("metric") == "top_10_accuracy")
    for (by, level), group in top.group_by("by", "level", maintain_order=True):
        cells = {r["pair_type"]: r for r in group.iter_rows(named=True)}
        view.add_row(str(by), str(level), *(
            ("n/a" if _nan(cells[t]["median"]) else
             f"{cells[t]['median']:.3f} [{cells[t]['ci_low']:.3f}, {cells[t]['ci_high']:.3f}]")
            if t in cells else "" for t in types
        ))  # fmt: skip
    stdout.print(view)
    stdout.print(f"Every metric and pair type in [bold]{path}[/]", highlight=False)
