"""Figures of the "Why" section, drawn on matplotlib's Agg canvas (no pyplot state)."""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure

from plismbench.analysis.neighbours import CLASSES
from plismbench.analysis.variance import MAIN_COMPONENTS

_COMPONENT_COLOURS = ("#2e7d32", "#c62828", "#1565c0", "#8e24aa", "#9e9e9e")
_CLASS_COLOURS = ("#2e7d32", "#6d4c41", "#c62828", "#1565c0", "#bdbdbd")


def _final(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("layer").cast(pl.Utf8) == "final")


def _stacked(
    rows: list[tuple[str, list[float]]], labels: tuple[str, ...], colours: tuple[str, ...],
    title: str, xlabel: str,
) -> Figure:  # fmt: skip
    fig = Figure(figsize=(8.5, 0.55 * len(rows) + 1.9), layout="constrained")
    ax = fig.add_subplot()
    for y, (_, values) in enumerate(rows):
        left = 0.0
        for value, colour in zip(values, colours, strict=True):
            ax.barh(y, value, left=left, color=colour, edgecolor="white", height=0.7)
            if value >= 0.06:
                ax.text(left + value / 2, y, f"{value:.2f}", ha="center", va="center",
                        fontsize=8, color="white")  # fmt: skip
            left += value
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    handles = [ax.bar(0, 0, color=c, label=lab) for lab, c in zip(labels, colours, strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(labels), fontsize=8,
               frameon=False)  # fmt: skip
    return fig


def variance_figure(variance: pl.DataFrame) -> Figure | None:
    """Stacked bars of the five main variance fractions per model (final features)."""
    v = _final(variance)
    if v.is_empty():
        return None
    rows = []
    for model in v["model"].unique(maintain_order=True):
        part = v.filter(pl.col("model") == model)
        frac = dict(zip(part["component"], part["fraction"], strict=True))
        rows.append((str(model), [float(frac.get(c, 0.0)) for c in MAIN_COMPONENTS]))
    return _stacked(rows, MAIN_COMPONENTS, _COMPONENT_COLOURS,
                    "Where the variance of the L2-normalised features goes",
                    "fraction of the total sum of squares")  # fmt: skip


def neighbours_figure(neighbours: pl.DataFrame) -> Figure | None:
    """Stacked bars of the neighbour classes per model, with the chance composition."""
    nb = _final(neighbours)
    if nb.is_empty():
        return None
    rows = []
    chance: list[float] = []
    for model in nb["model"].unique(maintain_order=True):
        part = nb.filter(pl.col("model") == model)
        value = dict(zip(part["quantity"], part["value"], strict=True))
        rows.append((str(model), [float(value[c]) for c in CLASSES]))
        ch = dict(zip(part["quantity"], part["chance"], strict=True))
        chance = [float(ch[c]) for c in CLASSES]
    rows.append(("(chance)", chance))
    k = int(nb.filter(pl.col("quantity") == CLASSES[0])["k"][0])
    return _stacked(rows, CLASSES, _CLASS_COLOURS, f"What the {k} nearest neighbours of a tile are",
                    "share of neighbours")  # fmt: skip


def probes_figure(probes: pl.DataFrame) -> Figure | None:
    """Grouped bars of probe accuracy (staining, scanner) per model, chance as lines."""
    p = _final(probes)
    if p.is_empty():
        return None
    models = list(p["model"].unique(maintain_order=True))
    fig = Figure(figsize=(max(5.0, 1.1 * len(models) + 3), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    for j, (target, colour) in enumerate((("staining", "#c62828"), ("scanner", "#1565c0"))):
        part = p.filter(pl.col("target") == target)
        acc = dict(zip(part["model"], part["accuracy"], strict=True))
        chance = dict(zip(part["model"], part["chance"], strict=True))
        for i, m in enumerate(models):
            x = i + (j - 0.5) * width
            ax.bar(x, acc.get(m, float("nan")), width, color=colour,
                   label=f"{target} probe" if i == 0 else None)  # fmt: skip
            ax.hlines(chance.get(m, float("nan")), x - width / 2, x + width / 2,
                      colors="black", linestyles="--",
                      label="chance" if i == 0 and j == 0 else "_nolegend_")  # fmt: skip
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("held-out accuracy (folds by location)")
    ax.set_title("Can a linear probe read the staining or the scanner?", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def layers_figure(
    variance: pl.DataFrame, probes: pl.DataFrame, neighbours: pl.DataFrame
) -> Figure | None:
    """Per-layer curves (when some model has layers): location share, staining probe, and the
    cross-condition retrieval MAP@R of the registered matches."""
    layered = [
        m for m in variance["model"].unique(maintain_order=True)
        if variance.filter(pl.col("model") == m)["layer"].n_unique() > 1
    ]  # fmt: skip
    if not layered:
        return None
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        (variance.filter(pl.col("component") == "location"), "fraction", "location share"),
        (probes.filter(pl.col("target") == "staining"), "accuracy", "staining probe accuracy"),
        (
            neighbours.filter(pl.col("quantity") == "map_at_r"),
            "value",
            "retrieval MAP@R of the matches",
        ),
    )
    for ax, (frame, column, title) in zip(axes, panels, strict=True):
        for m in layered:
            part = frame.filter(pl.col("model") == m)
            layers = [str(v) for v in part["layer"].cast(pl.Utf8)]
            order = sorted(range(len(layers)), key=lambda i: _layer_pos(layers[i]))
            ax.plot([layers[i] for i in order], [part[column][i] for i in order], marker="o",
                    label=str(m))  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer")
    axes[-1].legend(fontsize=8, frameon=False)
    return fig


def _layer_pos(layer: str) -> float:
    return float(layer) if layer.lstrip("-").isdigit() else float("inf")
