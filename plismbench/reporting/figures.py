"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every figure is built with ``layout="constrained"`` and saved without a tight bounding
box, so its PNG is exactly ``figsize x DPI`` pixels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from plismbench.data.catalogue import PAIR_TYPES, SCANNERS, STAININGS
from plismbench.metrics.catalogue import title
from plismbench.reporting.inputs import ModelRun

#: A colour as matplotlib's colour maps return it.
RGBA = tuple[float, float, float, float]
#: Pixels per inch of every PNG.
DPI = 100
#: The top-k shown in heatmaps and the scatter (the leaderboard's).
K = 10
#: Width (inches) of every figure: at `DPI`, about the report's content width in a
#: 1,400 px window, so a figure is shown full width at its own size (text not shrunk).
WIDTH = 13.0
#: Font size (points) of the numbers in heatmap cells: 10 pt is 14 px at 100 dpi.
CELL_FONT = 10.0
#: Beyond this many labels, a heatmap pair is stacked (one above the other), not side by side.
SIDE_BY_SIDE_MAX = 8
#: Marker area (points^2) of a model whose parameter count is unknown.
DEFAULT_MARKER = 160.0

_PAIR_LABELS = {
    "cross-scanner": "cross-scanner\n(same staining)",
    "cross-staining": "cross-staining\n(same scanner)",
    "cross-scanner-cross-staining": "cross-scanner,\ncross-staining",
}


def metric_label(metric: str) -> str:
    """Human name of a per-pair metric column (from the catalogue)."""
    return title(metric)


def model_colours(names: Sequence[str]) -> dict[str, RGBA]:
    """One distinct colour per model (tab10, then tab20 beyond ten models)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    n = cmap.N  # type: ignore[attr-defined]
    return {name: cmap(i % n) for i, name in enumerate(names)}


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (``figsize x DPI`` pixels, no timestamp metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig._plism_drawn = True  # type: ignore[attr-defined]
    return buf.getvalue()


#: Resolution of the PDF (and of any raster inside the SVG): print quality.
PRINT_DPI = 300


def export_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure as ``svg`` or ``pdf`` bytes at `PRINT_DPI` (no date metadata)."""
    buf = io.BytesIO()
    if fig.get_layout_engine() is not None and getattr(fig, "_plism_drawn", False):
        fig.set_layout_engine("none")  # laid out by the PNG: keep it, skip the solver
    metadata: dict[str, None] = {"Date": None} if fmt == "svg" else {"CreationDate": None}
    fig.savefig(buf, format=fmt, dpi=PRINT_DPI, metadata=metadata)
    return buf.getvalue()


def cosine_range(matrices: Sequence[np.ndarray]) -> tuple[float, float]:
    """One colour range for the cosine heatmaps of every model (at least 0.001 wide)."""
    finite = [m[np.isfinite(m)] for m in matrices]
    values = np.concatenate(finite) if finite else np.array([])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-3:
        lo, hi = lo - 5e-4, hi + 5e-4
    return lo, hi


def _ordered(present: Sequence[str], canonical: Sequence[str]) -> list[str]:
    """PLISM's order for PLISM names, then any others sorted."""
    seen = set(present)
    return [c for c in canonical if c in seen] + sorted(seen - set(canonical))


def condition_matrix(
    metrics: pl.DataFrame, metric: str, by: str
) -> tuple[list[str], np.ndarray, int]:
    """Median of ``metric`` per pair of ``by`` values (``scanner`` or ``staining``).

    Only pairs that differ in ``by`` alone are used (for ``scanner``: same staining),
    and each cell is the median over the other condition. Returns the labels, a
    symmetric matrix (NaN on the diagonal and where no pair exists) and the number of
    values of the other condition that contributed.
    """
    other = "staining" if by == "scanner" else "scanner"
    canonical = SCANNERS if by == "scanner" else STAININGS
    labels = _ordered(metrics[f"{by}_a"].to_list() + metrics[f"{by}_b"].to_list(), canonical)
    index = {label: i for i, label in enumerate(labels)}
    sub = metrics.filter(
        (pl.col(f"{other}_a") == pl.col(f"{other}_b")) & (pl.col(f"{by}_a") != pl.col(f"{by}_b"))
    )
    matrix = np.full((len(labels), len(labels)), np.nan)
    if sub.height:
        lo = pl.min_horizontal(f"{by}_a", f"{by}_b").alias("lo")
        hi = pl.max_horizontal(f"{by}_a", f"{by}_b").alias("hi")
        grouped = sub.group_by(lo, hi).agg(pl.col(metric).median().alias("median"))
        for a, b, value in grouped.select("lo", "hi", "median").rows():
            i, j = index[a], index[b]
            matrix[i, j] = matrix[j, i] = value
    n_other = sub[f"{other}_a"].n_unique() if sub.height else 0
    return labels, matrix, n_other


def _heatmap(
    ax: Axes,
    fig: Figure,
    labels: list[str],
    matrix: np.ndarray,
    *,
    title: str,
    colour_label: str,
    vmin: float,
    vmax: float,
    cmap: str,
    decimals: int = 2,
) -> None:
    from matplotlib import colormaps

    colours: Colormap = colormaps[cmap].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=vmin, vmax=vmax)
    ticks = np.arange(len(labels))
    ax.set_xticks(
        ticks,
        labels,
        rotation=45 if len(labels) > 7 else 0,
        ha="right" if len(labels) > 7 else "center",
    )
    ax.set_yticks(ticks, labels)
    ax.set_title(title, fontsize=12)
    ax.tick_params(length=0)
    ax.set_xticks(ticks[:-1] + 0.5, minor=True)
    ax.set_yticks(ticks[:-1] + 0.5, minor=True)
    ax.grid(which="minor", color="#e3e3e3", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_color("#bbbbbb")
    size = CELL_FONT if len(labels) <= SIDE_BY_SIDE_MAX else CELL_FONT - 1
    span = vmax - vmin or 1.0
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = matrix[i, j]
            if np.isfinite(value):
                shade = (value - vmin) / span
                ax.text(
                    j,
                    i,
                    f"{value:.{decimals}f}",
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if shade < 0.55 else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.85, label=colour_label)


def condition_heatmaps(
    run: ModelRun, by: str, cos_range: tuple[float, float] | None = None
) -> Figure | None:
    """Side by side, median top-10 accuracy and median cosine per pair of ``by`` values.

    ``by="scanner"``: scanner x scanner on same-staining pairs; ``by="staining"``:
    staining x staining on same-scanner pairs. None when fewer than two values exist.
    ``cos_range``: the cosine colour range shared by all models (default: this model's);
    cells show 3 decimals when the range is narrower than 0.3.
    """
    top = f"top_{K}_accuracy"
    labels, top_m, n_other = condition_matrix(run.metrics, top, by)
    if len(labels) < 2 or not np.isfinite(top_m).any():
        return None
    _, cos_m, _ = condition_matrix(run.metrics, "cosine_similarity", by)
    other = "staining" if by == "scanner" else "scanner"
    side = len(labels)
    if side <= SIDE_BY_SIDE_MAX:  # two heatmaps side by side, the full width
        cell = min(0.75, (WIDTH - 5.0) / (2 * side))
        fig = Figure(figsize=(WIDTH, max(4.2, side * cell + 2.0)), dpi=DPI, layout="constrained")
        axes = fig.subplots(1, 2)
    else:  # 13 stainings: one above the other, so cells stay large enough for their numbers
        cell = 0.55
        fig = Figure(figsize=(side * cell + 3.6, 2 * side * cell + 3.0), dpi=DPI,
                     layout="constrained")  # fmt: skip
        axes = fig.subplots(2, 1)
    _heatmap(
        axes[0],
        fig,
        labels,
        top_m,
        title=f"Median top-{K} accuracy",
        colour_label=f"top-{K} accuracy",
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
    )
    lo, hi = cos_range if cos_range is not None else cosine_range([cos_m])
    _heatmap(
        axes[1],
        fig,
        labels,
        cos_m,
        title="Median cosine similarity",
        colour_label="cosine, this model" if cos_range is None else "cosine, all models",
        vmin=lo,
        vmax=hi,
        cmap="cividis",
        decimals=3 if hi - lo < 0.3 else 2,
    )
    for ax in axes:
        ax.tick_params(labelsize=10)
    for ax in axes:
        ax.set_xlabel(by.capitalize())
        ax.set_ylabel(by.capitalize())
    fig.suptitle(
        f"{run.name}: {by} vs {by}, same {other} (median over {n_other} {other}"
        f"{'s' if n_other != 1 else ''})",
        fontsize=13,
        fontweight="bold",
    )
    return fig


def _marker_area(params_m: float | None, largest: float | None) -> float:
    if params_m is None:
        return DEFAULT_MARKER
    if not largest:
        return 60.0
    return 60.0 + 1100.0 * math.sqrt(params_m / largest)


def scatter_figure(
    board: pl.DataFrame,
    params_m: dict[str, float | None],
    colours: dict[str, RGBA],
    errors: dict[str, tuple[tuple[float, float], tuple[float, float]]] | None = None,
) -> Figure:
    """Median cosine (all pairs) against top-10 accuracy, one marker per model.

    The y value is the mean of the three cross-condition top-10 medians of the
    leaderboard; marker area grows with the parameter count (hollow when unknown).
    ``errors``: per model, the 95% intervals of x and y, drawn as error bars.
    """
    fig = Figure(figsize=(WIDTH, 7.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    known = [p for p in params_m.values() if p]
    largest = max(known) if known else None  # zero-parameter baselines get the smallest marker
    tops = [c for c in board.columns if c.startswith("top_10_cross_") and "_ci_" not in c]
    labels: list[tuple[float, float, str, float]] = []
    for row in board.iter_rows(named=True):
        name = row["model"]
        x = row["cosine_similarity_all"]
        # The dataset's cross-condition pair types (null: not one of this dataset's).
        y = float(np.mean([row[c] for c in tops if row[c] is not None] or [np.nan]))
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        p = params_m.get(name)
        colour = colours[name]
        ax.scatter(
            [x],
            [y],
            s=_marker_area(p, largest),
            color="none" if p is None else colour,
            edgecolors=colour,
            linewidths=2.0 if p is None else 0.8,
            alpha=0.85,
            zorder=3,
        )
        bars = (errors or {}).get(name)
        if bars is not None and all(np.isfinite(v) for pair in bars for v in pair):
            (x_lo, x_hi), (y_lo, y_hi) = bars
            ax.errorbar(
                [x], [y],
                xerr=[[max(0.0, x - x_lo)], [max(0.0, x_hi - x)]],
                yerr=[[max(0.0, y - y_lo)], [max(0.0, y_hi - y)]],
                fmt="none", ecolor=colour, elinewidth=1.4, capsize=4, alpha=0.9, zorder=2,
            )  # fmt: skip
        radius = math.sqrt(_marker_area(p, largest)) / 2  # points: the label starts beyond it
        rank = "" if row["rank"] is None else f"#{row['rank']} "
        labels.append((x, y, f"{rank}{name} ({param_text(p)})", radius))
    ax.set_xlabel("Median cosine similarity, all slide pairs (higher is more robust)")
    ax.set_ylabel(
        f"Top-{K} accuracy: mean of the cross-scanner, cross-staining\n"
        "and cross-both medians (higher is more robust)"
    )
    ax.set_title(
        f"Cosine similarity vs top-{K} accuracy across models", fontsize=13, fontweight="bold"
    )
    ax.grid(True, color="#e6e6e6", zorder=0)
    ax.margins(0.15)
    _place_labels(ax, labels)
    handles: list[Line2D] = []
    if largest:
        for ref in _reference_sizes(largest):
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker="o",
                    color="#888888",
                    alpha=0.6,
                    markersize=math.sqrt(_marker_area(ref, largest)),
                    label=f"{ref:,.0f}M params",
                )
            )
    if any(p is None for p in params_m.values()):
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                markerfacecolor="none",
                markeredgecolor="#555555",
                markersize=math.sqrt(DEFAULT_MARKER),
                label="parameters unknown",
            )
        )
    if handles:
        ax.legend(
            handles=handles,
            title="Marker area",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),  # outside the axes: never covers a model's label
            labelspacing=1.6,
            borderpad=1.0,
            frameon=True,
        )
    return fig


def _place_labels(ax: Axes, labels: list[tuple[float, float, str, float]]) -> None:
    """Model labels beside their markers, never over each other or out of the axes.

    A label goes right of its marker, or left in the right 40% of the axes (so it never
    runs into the legend outside them), and moves down a line while it would overlap
    one already placed; it starts beyond the marker's radius (points), so it never covers
    its own marker. Positions are compared in points after autoscaling; a label is
    about 5.5 points per character wide and 11 points high at font size 9.
    """
    ax.autoscale_view()
    x_lo, x_hi = ax.get_xlim()
    to_points = ax.transData.transform
    scale = 72.0 / ax.figure.dpi
    placed: list[tuple[float, float, float]] = []  # left, bottom, width in points
    for x, y, text, radius in sorted(labels, key=lambda t: -t[1]):
        px, py = (v * scale for v in to_points((x, y)))
        width = 5.5 * len(text)
        left_side = (x - x_lo) / ((x_hi - x_lo) or 1.0) > 0.6
        dx = -(radius + 6.0) if left_side else radius + 6.0
        left = px + dx - (width if left_side else 0.0)
        dy = 6.0  # above the horizontal error bar
        for _ in range(12):
            bottom = py + dy
            clash = any(
                abs(bottom - b) < 11 and left < x0 + w and x0 < left + width
                for x0, b, w in placed
            )
            if not clash:
                break
            dy -= 12.0
        placed.append((left, py + dy, width))
        ax.annotate(
            text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9, zorder=4,
            ha="right" if left_side else "left",
        )  # fmt: skip


def param_text(params_m: float | None) -> str:
    """``86M``, ``0.5M``, ``no weights`` or ``parameters unknown``."""
    if params_m is None:
        return "parameters unknown"
    if params_m == 0:
        return "no weights"
    return f"{params_m:,.0f}M" if params_m >= 1 else f"{params_m:.2g}M"


def _reference_sizes(largest: float) -> list[float]:
    refs = [float(r) for r in (10, 100, 300, 1000) if r <= largest * 1.05]
    return refs[-3:] or [largest]


def distribution_figure(
    runs: Sequence[ModelRun], metric: str, colours: dict[str, RGBA]
) -> Figure | None:
    """Box plots of ``metric`` over slide pairs, per pair type, one box per model."""
    types = [t for t in PAIR_TYPES if any(t in r.metrics["pair_type"] for r in runs)]
    types += sorted({t for r in runs for t in r.metrics["pair_type"].unique()} - set(types))
    runs = [r for r in runs if metric in r.metrics.columns]
    if not types or not runs:
        return None
    fig = Figure(figsize=(WIDTH, 5.6), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    box_w = 0.8 / len(runs)
    all_values = []
    for m, run in enumerate(runs):
        data, positions = [], []
        for t, ptype in enumerate(types):
            values = run.metrics.filter(pl.col("pair_type") == ptype)[metric].to_numpy()
            values = values[np.isfinite(values)]
            if values.size:
                data.append(values)
                positions.append(t - 0.4 + box_w * (m + 0.5))
                all_values.append(values)
        if not data:
            continue
        ax.boxplot(
            data,
            positions=positions,
            widths=box_w * 0.85,
            patch_artist=True,
            boxprops={"facecolor": colours[run.name], "alpha": 0.75, "edgecolor": "#333333"},
            medianprops={"color": "black", "linewidth": 1.6},
            whiskerprops={"color": "#333333"},
            capprops={"color": "#333333"},
            flierprops={
                "marker": ".",
                "markersize": 3,
                "markerfacecolor": colours[run.name],
                "markeredgecolor": "none",
                "alpha": 0.6,
            },
        )
    ax.set_xticks(range(len(types)), [_PAIR_LABELS.get(t, t) for t in types])
    ax.set_xlim(-0.6, len(types) - 0.4)
    ax.set_xlabel("Pair type")
    ax.set_ylabel(f"{metric_label(metric)} per slide pair")
    if metric == "median_rank" and all_values:
        low = min(float(v.min()) for v in all_values)
        high = max(float(v.max()) for v in all_values)
        if low > 0 and high / low > 20:
            ax.set_yscale("log")
            ax.set_ylabel(f"{metric_label(metric)} per slide pair (log scale, lower is better)")
    ax.set_title(
        f"{metric_label(metric)}: distribution over slide pairs by pair type",
        fontsize=13,
        fontweight="bold",
    )
    ax.grid(True, axis="y", color="#e6e6e6")
    ax.set_axisbelow(True)
    ax.legend(
        handles=[Patch(facecolor=colours[r.name], alpha=0.75, label=r.name) for r in runs],
        title="Model",
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
    )
    return fig
