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
#: (label, table, value column, row filter): the headline numbers, each beside its chance.
_SUMMARY = (
    ("location share", "variance", "fraction", pl.col("component") == "location"),
    ("location (adjusted)", "variance", "adjusted", pl.col("component") == "location"),
    ("staining probe", "probes", "accuracy", pl.col("target") == "staining"),
    ("scanner probe", "probes", "accuracy", pl.col("target") == "scanner"),
    ("retrieval MAP@R", "neighbours", "value", pl.col("quantity") == "map_at_r"),
    ("top-1 match", "neighbours", "value", pl.col("quantity") == "top_1"),
    ("top-1, offset removed", "offset", "value", pl.col("quantity") == "top_1_offset_corrected"),
    ("offset share (slide)", "offset", "value", pl.col("quantity") == "offset_share_slide"),
    ("RI staining", "robustness", "ri", pl.col("confounder") == "staining"),
    ("RI scanner", "robustness", "ri", pl.col("confounder") == "scanner"),
    ("global top-k (saturates)", "neighbours", "value", pl.col("quantity") == "global_top_k"),
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


def _models(tables: dict[str, pl.DataFrame]) -> list[str]:
    models: list[str] = []
    for frame in tables.values():
        for m in frame["model"].unique(maintain_order=True):
            if m not in models:
                models.append(str(m))
    return models


def _num(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    v = float(value)  # type: ignore[arg-type]
    return "n/a" if v != v else f"{v:.{digits}f}"


def summary_table(tables: dict[str, pl.DataFrame]) -> str:
    """One row per model (final features): each headline number, its chance in brackets."""
    head = "".join(f"<th>{escape(label)}</th>" for label, *_ in _SUMMARY)
    body = []
    for m in _models(tables):
        cells = []
        for _, table, column, cond in _SUMMARY:
            value, chance = None, None
            if table in tables:
                hit = tables[table].filter(
                    (pl.col("model") == m) & (pl.col("layer") == "final") & cond
                )
                if hit.height:
                    value = hit[column][0]
                    if "chance" in hit.columns and column != "adjusted":
                        chance = hit["chance"][0]
            text = _num(value)
            if chance is not None and _num(chance) != "n/a":
                text += f' <span class="chance">({_num(chance)})</span>'
            cells.append(f"<td>{text}</td>")
        body.append(f'<tr><td class="l">{escape(m)}</td>{"".join(cells)}</tr>')
    return (
        f'<table><tr><th class="l">model</th>{head}</tr>{"".join(body)}</table>'
        '<p class="note">In brackets: the value for structureless inputs (variance: '
        "df / df<sub>total</sub>; probes: 1 / levels; retrieval: a random ranking; offset "
        "share: 1 / locations). <em>adjusted</em> is the omega&sup2;-style location share "
        "(0 at the noise floor). RI is 0.5 when neighbours ignore both location and "
        "confounder. <em>global top-k</em> is near 1 for almost any model (90 matches per "
        "tile) and is shown for continuity only.</p>"
    )


def cka_table(tables: dict[str, pl.DataFrame]) -> str:
    """Debiased CKA with its permutation null, per model and scope ('' without CKA)."""
    if "cka" not in tables:
        return ""
    cka = tables["cka"]
    rows = []
    for m in cka["model"].unique(maintain_order=True):
        part = cka.filter(pl.col("model") == m)
        for scope in ("all", "staining", "scanner", "slide"):
            sc = part.filter(pl.col("scope") == scope)
            if not sc.height:
                continue

            def mean(col: str, sc: pl.DataFrame = sc) -> str:
                return _num(sc[col].mean()) if col in sc.columns else "n/a"

            rows.append(
                f'<tr><td class="l">{escape(str(m))}</td><td class="l">{scope}'
                f"{'' if scope == 'all' else f' (mean of {sc.height})'}</td>"
                f"<td>{mean('cka')}</td><td>{mean('cka_null')}</td>"
                f"<td>{mean('cka_null_q95')}</td><td>{mean('cka_minus_null')}</td>"
                f"<td>{mean('cka_biased')}</td><td>{int(sc['n_samples'][0])}</td></tr>"
            )
    ref = escape(str(cka["reference"][0]))
    return (
        f"<h3>Representation similarity to {ref} (debiased CKA)</h3>"
        '<table><tr><th class="l">model</th><th class="l">scope</th><th>CKA</th>'
        "<th>null mean</th><th>null 95%</th><th>CKA &minus; null</th><th>biased CKA</th>"
        f"<th>locations</th></tr>{''.join(rows)}</table>"
        '<p class="note">Debiased linear CKA (unbiased HSIC); samples are distinct tile '
        "locations; the null shuffles locations between the two models. The biased value "
        "is near p/(n+p) for unrelated models and is shown for comparison only.</p>"
    )


def subsets_table(tables: dict[str, pl.DataFrame]) -> str:
    """Pooled cross-scanner and cross-staining fractions with their chance ('' if absent)."""
    if "variance_subsets" not in tables:
        return ""
    sub = tables["variance_subsets"].filter(
        (pl.col("group") == "pooled") & (pl.col("layer") == "final")
    )
    rows = []
    for r in sub.iter_rows(named=True):
        chance = _num(r.get("chance")) if "chance" in sub.columns else "n/a"
        rows.append(
            f'<tr><td class="l">{escape(str(r["model"]))}</td><td class="l">{r["subset"]}</td>'
            f'<td class="l">{escape(str(r["component"]))}</td><td>{_num(r["fraction"])}</td>'
            f"<td>{chance}</td></tr>"
        )
    return (
        "<h3>One condition fixed: cross-scanner and cross-staining variance</h3>"
        '<table><tr><th class="l">model</th><th class="l">subset</th>'
        '<th class="l">component</th><th>fraction</th><th>chance</th></tr>'
        f"{''.join(rows)}</table>"
    )


def offset_table(tables: dict[str, pl.DataFrame]) -> str:
    """Offset shares and retrieval before and after removing each slide's mean."""
    if "offset" not in tables:
        return ""
    off = tables["offset"].filter(pl.col("layer") == "final")
    cols = (
        "offset_share_staining", "offset_share_scanner", "offset_share_slide",
        "top_1", "top_1_offset_corrected", "map_at_r", "map_at_r_offset_corrected",
        "matched_cosine", "matched_cosine_offset_corrected",
    )  # fmt: skip
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in cols)
    rows = []
    for m in off["model"].unique(maintain_order=True):
        part = off.filter(pl.col("model") == m)
        got = dict(zip(part["quantity"], part["value"], strict=True))
        cells = "".join(f"<td>{_num(got.get(c))}</td>" for c in cols)
        rows.append(f'<tr><td class="l">{escape(str(m))}</td>{cells}</tr>')
    return (
        "<h3>Is the nuisance an offset?</h3>"
        f'<table><tr><th class="l">model</th>{head}</tr>{"".join(rows)}</table>'
        '<p class="note">Offset share: the part of each nuisance that is a constant shift per '
        "staining, scanner or slide (noise gives 1 / locations). If subtracting each slide's "
        "mean makes retrieval near perfect, the model's weakness is an offset.</p>"
    )


def layers_table(tables: dict[str, pl.DataFrame]) -> str:
    """Per-layer retrieval MAP@R of each model with layers ('' when none has any)."""
    if "neighbours" not in tables:
        return ""
    nb = tables["neighbours"].filter(pl.col("quantity") == "map_at_r")
    rows = []
    for m in nb["model"].unique(maintain_order=True):
        part = nb.filter(pl.col("model") == m)
        if part.height < 2:
            continue
        pairs = sorted(
            zip(part["layer"].cast(pl.Utf8), part["value"], strict=True),
            key=lambda p: float(p[0]) if p[0].lstrip("-").isdigit() else float("inf"),
        )
        cells = ", ".join(f"{escape(layer)}: {_num(v)}" for layer, v in pairs)
        rows.append(
            f'<tr><td class="l">{escape(str(m))}</td><td class="l">{cells}</td>'
            f"<td>{_num(part['chance'][0])}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h3>Cross-condition retrieval, layer by layer (MAP@R)</h3>"
        '<table><tr><th class="l">model</th><th class="l">layer: MAP@R</th><th>chance</th></tr>'
        f"{''.join(rows)}</table>"
    )


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
        "stay near chance, and a tile retrieves the same location in the other slides first. "
        "Definitions: the documentation's page <em>Why are some models more "
        "robust?</em>.</p>",
        summary_table(tables),
        offset_table(tables),
        subsets_table(tables),
        cka_table(tables),
        layers_table(tables),
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
         "Per-layer curves of location share, staining probe accuracy and retrieval MAP@R",
         "Each quantity per extracted layer (final = the model's output features); MAP@R is "
         "the cross-condition retrieval of each tile's registered matches."),
    )  # fmt: skip
    for name, fig, alt, caption in drawn:
        if fig is not None:
            parts.append(_figure_html(_save(fig, folder, name), alt, caption))
    parts.append("</div>")
    return "\n".join(parts)
