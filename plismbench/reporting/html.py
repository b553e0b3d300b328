"""One self-contained HTML page: inline CSS, PNGs as ``data:`` URIs, no script, no network."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Any

import numpy as np

from plismbench import __version__
from plismbench.reporting.figures import param_text
from plismbench.reporting.inputs import ModelRun, ReportInputs

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
margin:0;color:#1f2328;background:#f6f7f9;line-height:1.45}
main{max-width:1840px;margin:0 auto;padding:24px 32px 48px}
header{background:#1f3b57;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:26px}header p{margin:0;opacity:.85}
h2{border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:40px}
h3{margin-top:28px}
nav{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 18px;margin-top:8px}
nav a{margin-right:18px;color:#0b5cad;text-decoration:none}
table{border-collapse:collapse;background:#fff;margin:8px 0 12px;font-size:14px}
th,td{border:1px solid #d0d7de;padding:5px 10px;text-align:right;vertical-align:top}
th{background:#eef1f4}td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fafbfc}td.best{font-weight:700;color:#0a5d2a}
td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
figure{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px;margin:12px 0}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:13.5px;color:#57606a;margin-top:6px}
.note{color:#57606a;font-size:14px}
.prov{overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;gap:0 16px;align-items:flex-start}
.grid figure{max-width:100%;box-sizing:border-box}
.pair{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.scroll{overflow-x:auto;max-width:100%}
#leaderboard{font-size:13px}#leaderboard th,#leaderboard td{padding:4px 6px}
#leaderboard td.l:last-child{max-width:170px}
#leaderboard .cis{font-size:10.5px;color:#57606a;letter-spacing:-.3px;white-space:nowrap}
#leaderboard td.l:nth-child(2){max-width:200px;overflow-wrap:anywhere}
tr.off td{color:#6e7781}
.demo{background:#fff4ce;border:1px solid #d4a72c;border-radius:6px;padding:10px 16px;
margin-top:12px;font-size:15px}
"""


@dataclass(frozen=True)
class Image:
    """One PNG of the report: its file name beside the HTML and its bytes."""

    name: str
    png: bytes
    alt: str
    caption: str


def _uri(image: Image) -> str:
    return "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")


def _figure(image: Image | None, missing: str) -> str:
    if image is None:
        return f'<p class="note">{escape(missing)}</p>'
    return (
        f'<figure id="fig-{escape(image.name)}"><img src="{_uri(image)}" '
        f'alt="{escape(image.alt)}" data-file="{escape(image.name)}">'
        f"<figcaption>{escape(image.caption)}</figcaption></figure>"
    )


def _full(value: Any) -> str:
    """A float at full precision (shortest round-trip repr)."""
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else repr(value)
    return escape(str(value))


def _params(params_m: float | None) -> str:
    return param_text(params_m).replace("parameters unknown", "unknown")


def _cell(value: Any, ci: tuple[float, float] | None = None, best: bool = False) -> str:
    """3 decimals (and the interval), the full-precision value in the tooltip."""
    if not isinstance(value, float) or not np.isfinite(value):
        return '<td class="mono">n/a</td>'
    shown = f"{value:.3f}"
    if ci is not None and all(np.isfinite(v) for v in ci):
        shown += f'<br><span class="cis">{ci[0]:.3f}&ndash;{ci[1]:.3f}</span>'
    cls = "mono best" if best else "mono"
    return f'<td class="{cls}" title="{value!r}">{shown}</td>'


#: Leaderboard columns of the report: (column, header).
BOARD_COLUMNS = (
    ("cosine_similarity_all", "Cosine<br>all"),
    ("top_10_cross_scanner", "Top-10<br>scanner"),
    ("top_10_cross_staining", "Top-10<br>staining"),
    ("top_10_cross_scanner_cross_staining", "Top-10<br>both"),
    ("leaderboard_metric", "Score"),
)


def leaderboard_table(inputs: ReportInputs) -> str:
    """The leaderboard at 3 decimals with the score's interval; the best ranked value in bold.

    Each value's full precision is in its tooltip (and in ``leaderboard.csv``).
    """
    board = inputs.board
    params = {m.name: m.params_m for m in inputs.models}
    ranked = board.filter(board["status"] == "ranked") if "status" in board.columns else board
    best = {
        c: np.nanmax(ranked[c].to_numpy()) if ranked.height and np.isfinite(
            ranked[c].to_numpy()).any() else None
        for c, _ in BOARD_COLUMNS
    }  # fmt: skip
    head = "".join(f"<th>{label}</th>" for _, label in BOARD_COLUMNS)
    rows = []
    for row in board.iter_rows(named=True):
        status = row.get("status", "ranked")
        cells = [
            f"<td>{'' if row['rank'] is None else row['rank']}</td>",
            f'<td class="l">{escape(row["model"])}</td>',
            f"<td>{_params(params.get(row['model']))}</td>",
        ]
        for c, _ in BOARD_COLUMNS:
            ci: tuple[float, float] | None = None
            lo, hi = row.get(f"{c}_ci_low"), row.get(f"{c}_ci_high")
            if lo is not None and hi is not None:
                ci = (float(lo), float(hi))
            v = row[c]
            cells.append(_cell(v, ci, status == "ranked" and v is not None and v == best[c]))
        group = row.get("group")
        cells.append(f"<td>{'' if group is None else group}</td>")
        note = row.get("note") or ""
        label = escape(status) + (f'<br><span class="note">{escape(note)}</span>' if note else "")
        cells.append(f'<td class="l">{label}</td>')
        cls = "" if status == "ranked" else ' class="off"'
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table id="leaderboard"><thead><tr><th>#</th>'
        f'<th class="l">Model</th><th>Params</th>{head}<th>Group</th>'
        f'<th class="l">Status</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _flatten(meta: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = " ".join(str(v) for v in value) if key == "argv" else json.dumps(value)
        else:
            out[name] = "" if value is None else str(value)
    return out


#: Fields that differ between slides without saying anything about the features.
NOISE = ("created",)


def _quiet(meta: dict[str, str]) -> dict[str, str]:
    """Drop noise: creation times, and the mean/std of models that do not normalise."""
    raw = meta.get("normalise", "").lower() in ("false", "0", "none", "")
    return {
        k: v for k, v in meta.items()
        if k not in NOISE and not (raw and "normalise" in meta and k in ("mean", "std"))
    }  # fmt: skip


def provenance_table(run: ModelRun) -> str:
    """What produced a model's features: one row per ``meta.json`` field, collapsed."""
    meta = {s: _flatten(m) for s, m in run.provenance.items() if isinstance(m, dict)}
    meta = {s: _quiet(m) for s, m in meta.items()}
    n_slides = int(run.run.n_slides or 0) or len(meta)
    if not meta:
        return (
            '<p class="note">No <code>meta.json</code> beside this model\'s features '
            "(they were not written by <code>plismbench extract</code>), so their "
            "provenance is unknown.</p>"
        )
    keys = list(dict.fromkeys(k for m in meta.values() for k in m if k != "slide_id"))
    rows = []
    for key in keys:
        values = [m.get(key, "") for m in meta.values()]
        distinct = sorted(set(values))
        if len(distinct) == 1:
            shown = escape(distinct[0]) or "&mdash;"
        elif key == "tile_count" and all(v.isdigit() for v in distinct):
            nums = sorted(int(v) for v in distinct)
            shown = f"varies: {nums[0]} to {nums[-1]}"
        else:
            shown = (
                f"{len(distinct)} distinct values: {escape(distinct[0])} &hellip; "
                f"{escape(distinct[-1])}"
            )
        rows.append(f'<tr><td class="l">{escape(key)}</td><td class="l mono">{shown}</td></tr>')
    return (
        f'<p class="note"><code>meta.json</code> found for {len(meta)} of {n_slides} slides; '
        "a value shared by every slide is shown once.</p>"
        '<div class="prov"><table><thead><tr><th class="l">Field</th><th class="l">Value</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def run_table(run: ModelRun) -> str:
    """The evaluation's settings from ``run.json``."""
    fields = [
        ("plismbench", "plismbench version"),
        ("n_slides", "slides"),
        ("n_pairs", "slide pairs"),
        ("n_tiles", "tiles per slide used"),
        ("n_tiles_available", "tiles per slide available"),
        ("tile_subset", "tile subset"),
        ("dim", "feature dimension"),
        ("top_k", "top-k"),
        ("device", "device"),
        ("features_dir", "features"),
        ("finished_at", "finished"),
        ("elapsed_s", "evaluation time (s)"),
    ]
    record = run.run.to_json()
    rows = "".join(
        f'<tr><td class="l">{label}</td><td class="l mono">{_full(record[key])}</td></tr>'
        for key, label in fields
        if record.get(key) is not None
    )
    return (
        '<table><thead><tr><th class="l">Evaluation</th><th class="l">Value</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


DEMO_BANNER = (
    '<p class="demo"><strong>Demo data.</strong> These results come from the offline demo: '
    "a synthetic PLISM made from one CC0 H&amp;E crop, weight-free colour-histogram "
    "baselines and a ViT-Tiny with random weights. They show what the report looks like "
    "and that a random network can score high; they say nothing about real models. "
    "The real benchmark: <code>uv run plismbench run --model h0-mini --device cuda</code>.</p>"
)


def render(
    inputs: ReportInputs,
    scatter: Image,
    distributions: Sequence[Image],
    heatmaps: dict[str, tuple[Image | None, Image | None]],
    *,
    demo: bool = False,
    sections: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The whole page; ``sections`` (id, title, html) follow the leaderboard."""
    models = inputs.models
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>plismbench report: {inputs.n_tiles} tiles per slide</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>plismbench report</h1>",
        f"<p>Robustness to staining and scanner shifts on PLISM: {len(models)} model"
        f"{'s' if len(models) != 1 else ''}, {inputs.n_tiles} tiles per slide. "
        f"Generated {now} by plismbench {__version__} from "
        f"<code>{escape(str(inputs.base))}</code>.</p></header><main>",
        *([DEMO_BANNER] if demo else []),
        '<nav><a href="#leaderboard-section">Leaderboard</a>'
        + "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in sections)
        + '<a href="#scatter">Cosine vs top-10</a>'
        '<a href="#distributions">Distributions</a><a href="#heatmaps">Heatmaps</a>'
        '<a href="#provenance">Provenance</a></nav>',
        '<section id="leaderboard-section"><h2>Leaderboard</h2>',
        '<p class="note">The reference leaderboard metric (Score) is the mean of four medians '
        "over slide pairs: cosine similarity over all pairs (Cosine all), and top-10 accuracy "
        "over cross-scanner pairs of the same staining (Top-10 scanner), cross-staining pairs "
        "from the same scanner (Top-10 staining) and pairs that differ in both (Top-10 both). "
        "Higher is more robust. Values "
        "at 3 decimals (full precision in the tooltip and in leaderboard.csv), each with its "
        "95% interval underneath, from a bootstrap over stainings and scanners. Models in "
        "the same group are not significantly different from the group's first model "
        "(Holm, alpha 0.05). The best ranked value of each column is in bold; incomplete "
        "models and models evaluated on other slides, tiles or top-k lists are listed after, "
        "greyed, with the reason.</p>",
        leaderboard_table(inputs),
        "</section>",
        *(
            html if html.lstrip().startswith("<section") else
            f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>'
            for sid, title, html in sections
        ),
        '<section id="scatter"><h2>Cosine similarity vs top-10 accuracy</h2>',
        _figure(scatter, ""),
        "</section>",
        '<section id="distributions"><h2>Distributions by pair type</h2>',
        '<p class="note">Each box spans the quartiles of one model\'s slide pairs of one type; '
        "the black line is the median, whiskers reach 1.5 IQR.</p>",
        '<div class="grid">',
        *(_figure(image, "") for image in distributions),
        "</div></section>",
        '<section id="heatmaps"><h2>Heatmaps per model</h2>',
        '<p class="note">Scanner vs scanner: pairs of slides with the same staining, each cell '
        "the median over stainings. Staining vs staining: pairs with the same scanner, each cell "
        "the median over scanners. Top-10 accuracy uses a fixed 0 to 1 colour scale; cosine "
        "similarity uses each model's own range (cosine levels differ between feature spaces). "
        "Blank cells have no slide pair.</p>",
    ]
    for run in models:
        scanners, stainings = heatmaps.get(run.name, (None, None))
        parts += [
            f'<h3>{escape(run.name)}</h3><div class="grid">',
            _figure(
                scanners,
                "Scanner heatmap not drawn: fewer than two scanners, or no two "
                "slides with the same staining on different scanners.",
            ),
            _figure(
                stainings,
                "Staining heatmap not drawn: fewer than two stainings, or no "
                "two slides with the same scanner and different stainings.",
            ),
            "</div>",
        ]
    parts.append('</section><section id="provenance"><h2>Provenance of the features</h2>')
    for run in models:
        parts += [
            f"<h3>{escape(run.name)}</h3>",
            f'<p class="note">Outputs: <code>{escape(str(run.folder))}</code>. Parameters: '
            f"{_params(run.params_m)}.</p>",
            f'<div class="pair"><div>{run_table(run)}</div>',
            f"<div>{provenance_table(run)}</div></div>",
        ]
    parts.append("</section></main></body></html>\n")
    return "\n".join(parts)
