"""CLI command ``compare``: paired comparisons of models (thin over plismbench.stats.compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plismbench.cli.app import app, examples
from plismbench.cli.options import MetricsDir, NTilesFolder

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
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Paired differences on the same slide pairs, with CIs and Holm-corrected tests."""
    from rich.table import Table

    from plismbench.stats.compare import compare_entries, leaderboard_rows, load_models
    from plismbench.store.evaluation import tiles_dir
    from plismbench.utils.io import atomic_path

    n, entries = load_models(metrics_dir, models, n_tiles)
    table = compare_entries(entries, n_boot=n_boot, seed=seed)
    path = out or tiles_dir(metrics_dir, n) / "compare.csv"
    with atomic_path(path) as tmp:
        table.write_csv(tmp)
    view = Table(title=f"Paired comparisons, {n} tiles per slide", title_justify="left")
    for label in ("A", "B", "Metric", "Pairs", "A", "B", "A - B [95% CI]", "p boot (Holm)",
                  "p Wilcoxon (Holm)", "Sig."):  # fmt: skip
        view.add_column(label, justify="left" if label in ("A", "B", "Metric") else "right")
    view.columns[4].header, view.columns[5].header = "median A", "median B"
    for r in leaderboard_rows(table).iter_rows(named=True):
        metric = "score" if r["pair_type"] == "score" else f"{r['metric']} {r['pair_type']}"
        wil = "n/a" if r["p_wilcoxon_pairs_holm"] != r["p_wilcoxon_pairs_holm"] else (
            f"{r['p_wilcoxon_pairs_holm']:.2g}"
        )
        view.add_row(
            r["model_a"], r["model_b"], metric.replace("_accuracy", ""), str(r["n_pairs"]),
            f"{r['median_a']:.3f}", f"{r['median_b']:.3f}",
            f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
            f"{r['p_bootstrap_holm']:.3g}", wil, "yes" if r["significant"] else "no",
        )  # fmt: skip
    view.caption = (
        "p boot: bootstrap over stainings and scanners (the units of replication). "
        "p Wilcoxon: signed-rank over slide pairs as in the H0-mini paper; it treats pairs "
        "as independent, so it is far too optimistic. Both Holm-corrected across the "
        "comparisons. Every metric and pair type in the CSV."
    )
    stdout.print(view)
    stdout.print(f"All comparisons in [bold]{path}[/]", highlight=False)


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
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
) -> None:
    """Medians per staining, per scanner (and per tissue), each with its 95% CI."""
    import polars as pl
    from rich.table import Table

    from plismbench.stats.model_breakdown import breakdown as run_breakdown

    table, path = run_breakdown(model, metrics_dir, n_tiles, tissue_map, out, n_boot)
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
            f"{cells[t]['median']:.3f} [{cells[t]['ci_low']:.3f}, {cells[t]['ci_high']:.3f}]"
            if t in cells else "" for t in types
        ))  # fmt: skip
    stdout.print(view)
    stdout.print(f"Every metric and pair type in [bold]{path}[/]", highlight=False)
