"""Optional report sections: the published leaderboard, paired comparisons, the worst
10% of slide pairs, the "Why".

Each is a ``(id, title, html)``; a section with nothing to show is left out.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from plismbench.errors import InputError
from plismbench.reporting.html import p_value, term
from plismbench.reporting.inputs import ReportInputs

#: Model folders of the offline demo (``plismbench run`` with no model).
DEMO_MODELS = ("hed-histogram", "rgb-histogram", "vit-tiny-random")
#: The documentation's pages, as linked from the report.
DOCS = "https://github.com/plismbench/plismbench/blob/main/docs"
#: Most ranked models compared pairwise in the report (the CSV of ``compare`` has any).
MAX_COMPARED = 6

Section = tuple[str, str, str]


def is_demo(inputs: ReportInputs) -> bool:
    """Demo data: synthetic slides, or only the demo's weight-free and random models."""
    for run in inputs.models:
        for meta in run.provenance.values():
            source = meta.get("source") if isinstance(meta, dict) else None
            if isinstance(source, dict) and (
                "synth" in str(source.get("type", "")).lower()
                or any(Path(str(v)).name == "synthetic" for v in source.values())
            ):
                return True  # the demo's folder is <output>/data/synthetic
    names = {m.name for m in inputs.models}
    return bool(names) and names <= set(DEMO_MODELS)


def _f(value: float | None, sign: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def published_section(inputs: ReportInputs) -> Section | None:
    """This run's models beside their published rows, with the differences."""
    from plismbench.stats.published import LABELS, VALUES, beside_published, published_source

    side = beside_published(inputs.board)
    if side.height == 0:
        return None
    src = published_source()
    head = "".join(f"<th>{LABELS[v]}</th>" for v in VALUES)
    rows = []
    for r in side.iter_rows(named=True):
        rows.append(
            f'<tr><td class="l">{escape(r["published_name"])} (published #'
            f"{r['published_rank']})</td>"
            + "".join(f"<td>{_f(r[f'{v}_published'])}</td>" for v in VALUES)
            + "</tr>"
        )
        rows.append(
            f'<tr><td class="l">this run: {escape(r["model"])}</td>'
            + "".join(f"<td>{_f(r[v])} ({_f(r[f'{v}_diff'], True)})</td>" for v in VALUES)
            + "</tr>"
        )
    warn = (
        f' <strong>This run used {inputs.n_tiles} tiles per slide, not {src["n_tiles"]:,}.'
        "</strong>"
        if inputs.n_tiles != src["n_tiles"]
        else ""
    )
    body = (
        f'<p class="note">Published: {escape(src["source"])}, {src["n_tiles"]:,} tiles per '
        "slide, 3 decimals. This run: its value (difference to the published one). Agreement "
        "to expect and why a faithful run differs: the documentation's page "
        f'<a href="{DOCS}/published.md"><em>Published scores</em></a>.'
        f"{warn}</p>"
        '<div class="scroll"><table id="published"><thead><tr><th class="l">Model</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return "published", "Beside the published leaderboard", body


def compare_section(inputs: ReportInputs) -> Section | None:
    """Paired differences of the leaderboard values between the ranked models."""
    import polars as pl

    from plismbench.stats.compare import WORST, compare_entries, leaderboard_rows
    from plismbench.stats.ranking import load_entry

    ranked = [r["model"] for r in inputs.board.iter_rows(named=True) if r["status"] == "ranked"]
    ranked = ranked[:MAX_COMPARED]
    if len(ranked) < 2:
        return None
    entries = [load_entry(inputs.base / name) for name in ranked]
    if any(e.metrics is None for e in entries):
        return None
    try:
        full = compare_entries(entries, metrics=["cosine_similarity", "top_10_accuracy"])
        table = pl.concat([leaderboard_rows(full), leaderboard_rows(full, WORST)])
    except InputError:  # e.g. the same slides but not the same pairs: no paired section
        return None
    rows = []
    for r in table.iter_rows(named=True):
        what = "score" if r["pair_type"] == "score" else (
            f"{r['metric'].replace('_accuracy', '').replace('_', ' ')}, {r['pair_type']}"
            + (", worst 10% mean" if r["statistic"] == WORST else "")
        )
        wil, p_boot = r["p_wilcoxon_pairs_adj"], r["p_bootstrap_adj"]
        sig = "n/a" if r["significant"] is None else "yes" if r["significant"] else "no"
        rows.append(
            f'<tr><td class="l">{escape(r["model_a"])} &minus; {escape(r["model_b"])}</td>'
            f'<td class="l">{escape(what)}</td>'
            f"<td>{_f(r['difference'], True)} [{_f(r['ci_low'], True)}, "
            f"{_f(r['ci_high'], True)}]</td><td>{p_value(p_boot)}</td>"
            f"<td>{p_value(wil)}</td>"
            f"<td>{sig}</td></tr>"
        )
    body = (
        '<p class="note">Differences of medians (and of the means of the worst 10% of '
        "pairs) on the same slide pairs, with "
        f"{term('ci', '95% intervals')} and p-values (2 significant digits) from the "
        f"bootstrap over stainings and scanners, {term('holm', 'Holm')}-corrected across "
        "the comparisons. The Wilcoxon signed-rank test over slide pairs is the H0-mini "
        "paper's; it treats the pairs as independent, so its p-values are far too small. "
        "Every metric and pair type: <code>plismbench compare</code>.</p>"
        '<div class="scroll"><table id="comparisons"><thead><tr><th class="l">Models</th>'
        '<th class="l">Value</th><th>Difference [95% CI]</th><th>p bootstrap (Holm)</th>'
        "<th>p Wilcoxon, pairs (Holm)</th><th>Significant</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return "comparisons", "Are the differences significant?", body


def analysis_dir(inputs: ReportInputs) -> Path | None:
    """An ``analysis/`` folder next to the metrics (beside, inside, or in ``<n>_tiles``)."""
    for folder in (
        inputs.metrics_dir.parent / "analysis",
        inputs.metrics_dir / "analysis",
        inputs.base / "analysis",
    ):
        if folder.is_dir():
            return folder
    return None


def why_section(inputs: ReportInputs) -> Section | None:
    """The "Why" section of ``plismbench.analyze`` when an analysis folder exists."""
    folder = analysis_dir(inputs)
    if folder is None:
        return None
    try:
        from plismbench.analysis.report import why_section as analyze_why
    except ImportError:
        return None
    html = analyze_why(folder)
    return ("why", "Why are some models more robust?", html) if html else None


#: (pair type, metric, header) of the worst-10% table: the leaderboard's four values.
TAIL_VALUES = (
    ("all", "cosine_similarity", "Cosine<br>all"),
    ("cross-scanner", "top_10_accuracy", "Top-10<br>scanner"),
    ("cross-staining", "top_10_accuracy", "Top-10<br>staining"),
    ("cross-scanner-cross-staining", "top_10_accuracy", "Top-10<br>both"),
)


def tail_section(inputs: ReportInputs) -> Section | None:
    """Per model, the mean of the worst 10% of slide pairs of the leaderboard's values."""
    import polars as pl

    from plismbench.reporting.html import _cell
    from plismbench.stats.summary import results_ci

    rows = []
    for run in inputs.models:
        names = [m for m in ("cosine_similarity", "top_10_accuracy") if m in run.metrics.columns]
        try:
            table = results_ci(run.metrics, names) if names else None
        except (InputError, ValueError, IndexError):  # no design to resample
            table = None
        cells = [f'<td class="l">{escape(run.name)}</td>']
        for ptype, metric, _ in TAIL_VALUES:
            which = (pl.col("pair_type") == ptype) & (pl.col("metric") == metric)
            hit = None if table is None else table.filter(which)
            if hit is None or hit.height == 0:
                cells.append(_cell(None))
                continue
            r = hit.row(0, named=True)
            cells.append(_cell(r["worst10_mean"], (r["worst10_ci_low"], r["worst10_ci_high"])))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        return None
    head = "".join(f"<th>{h}</th>" for *_, h in TAIL_VALUES)
    body = (
        '<p class="note">The mean of the worst 10% of slide pairs of each pair type (a model '
        "can have a good median and a bad tail), with a bias-corrected "
        f"{term('ci', '95% interval')} from the bootstrap over stainings and scanners. These "
        "intervals cover less often than 95% (0.56 to 0.92 in simulation on 13 stainings x "
        "7 scanners): read them as a lower bound on the uncertainty. Every metric and pair "
        "type: <code>results.csv</code>, columns <code>worst10_*</code>.</p>"
        '<div class="scroll"><table id="worst10"><thead><tr><th class="l">Model</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return "worst10", "The worst 10% of slide pairs", body


def extra_sections(inputs: ReportInputs) -> list[Section]:
    """Every optional section that has something to show, in page order."""
    made = (compare_section(inputs), tail_section(inputs), published_section(inputs),
            why_section(inputs))  # fmt: skip
    return [s for s in made if s is not None]
