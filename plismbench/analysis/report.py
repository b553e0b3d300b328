"""The report's "Why are some models more robust?" section, from an analysis folder.

``why_section(analysis_dir)`` returns the section's body, an HTML fragment without its
heading (the report adds "Why are some models more robust?"): figures inline as PNG
``data:`` URIs and a summary table, and writes each figure as PNG and SVG to
``<analysis_dir>/figures/``. An empty or absent folder gives an empty string.
"""

from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from plismbench.analysis import figures
from plismbench.analysis.api import load_tables
from plismbench.utils.io import atomic_path

FIGURES_DIR = "figures"
_SUMMARY = (
    ("location share", "variance", "fraction", pl.col("component") == "location"),
    ("staining probe", "probes", "accuracy", pl.col("target") == "staining"),
    ("scanner probe", "probes", "accuracy", pl.col("target") == "scanner"),
    ("global top-k", "neighbours", "value", pl.col("quantity") == "global_top_k"),
    ("RI staining", "robustness", "ri", pl.col("confounder") == "staining"),
    ("RI scanner", "robustness", "ri", pl.col("confounder") == "scanner"),
    ("centred cosine", "geometry", "value", pl.col("metric") == "centred_cosine"),
    ("anisotropy", "geometry", "value", pl.col("metric") == "anisotropy"),
    ("effective rank", "geometry", "value", pl.col("metric") == "effective_rank"),
)


def _save(fig: Figure, folder: Path, name: str) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=100)
        data[fmt] = buf.getvalue()
        with atomic_path(folder / f"{name}.{fmt}") as tmp:
            tmp.write_bytes(data[fmt])
            tmp.chmod(0o644)
    return data["png"]


def _figure_html(png: bytes, alt: str, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="{uri}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def summary_table(tables: dict[str, pl.DataFrame]) -> str:
    """One row per model (final features): the headline number of each quantity."""
    models: list[str] = []
    for frame in tables.values():
        for m in frame["model"].unique(maintain_order=True):
            if m not in models:
                models.append(str(m))
    head = "".join(f"<th>{escape(label)}</th>" for label, *_ in _SUMMARY)
    body = []
    for m in models:
        cells = []
        for _, table, column, cond in _SUMMARY:
            value = None
            if table in tables:
                hit = tables[table].filter(
                    (pl.col("model") == m) & (pl.col("layer") == "final") & cond
                )
                value = hit[column][0] if hit.height else None
            cells.append(f"<td>{'n/a' if value is None else f'{float(value):.3f}'}</td>")
        body.append(f'<tr><td class="l">{escape(m)}</td>{"".join(cells)}</tr>')
    return f'<table><tr><th class="l">model</th>{head}</tr>{"".join(body)}</table>'


def why_section(analysis_dir: str | os.PathLike[str]) -> str:
    """Body of the "Why" section, without heading ('' when there is nothing to show)."""
    tables = load_tables(analysis_dir)
    if "variance" not in tables:
        return ""
    folder = Path(analysis_dir) / FIGURES_DIR
    parts = [
        '<div class="why">',
        '<p class="note">On L2-normalised features of the crossed location x staining x '
        "scanner design: a robust model puts its variance in <em>location</em>, its probes "
        "stay near chance, and a tile's nearest neighbours are the same location in other "
        "slides. Definitions: the documentation's page <em>Why are some models more "
        "robust?</em>.</p>",
        summary_table(tables),
    ]
    drawn = (
        ("variance", figures.variance_figure(tables["variance"]),
         "Stacked bars of the variance fractions per model",
         "Share of the total sum of squares of each model's normalised features explained by "
         "tile location, staining, scanner, their interaction, and location x condition."),
        ("probes", figures.probes_figure(tables["probes"]) if "probes" in tables else None,
         "Probe accuracy for staining and scanner per model, with chance levels",
         "Held-out accuracy of linear probes (folds grouped by tile location); dashed: chance."),
        ("neighbours",
         figures.neighbours_figure(tables["neighbours"]) if "neighbours" in tables else None,
         "Composition of the nearest neighbours of each tile per model",
         "Same location (in another slide), same slide, same staining, same scanner or "
         "other; the last bar is what random neighbours would give."),
        ("layers",
         figures.layers_figure(tables["variance"], tables.get("probes", pl.DataFrame()),
                               tables.get("neighbours", pl.DataFrame()))
         if "probes" in tables and "neighbours" in tables else None,
         "Per-layer curves of location share, staining probe accuracy and global top-k",
         "Each quantity per extracted layer (final = the model's output features)."),
    )  # fmt: skip
    for name, fig, alt, caption in drawn:
        if fig is not None:
            parts.append(_figure_html(_save(fig, folder, name), alt, caption))
    parts.append("</div>")
    return "\n".join(parts)
