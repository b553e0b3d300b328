"""``plismbench report``: one self-contained HTML page of figures and tables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from plismbench.errors import InputError
from plismbench.reporting import figures
from plismbench.reporting.bundle import write_bundle
from plismbench.reporting.html import Image, render
from plismbench.reporting.inputs import ReportInputs, load_inputs
from plismbench.reporting.intervals import TOP10_MEAN, model_intervals
from plismbench.reporting.sections import extra_sections, is_demo
from plismbench.utils.io import atomic_path
from plismbench.utils.paths import check_writable_dir

#: Default file name, in ``<metrics-dir>/<n>_tiles/``.
REPORT_FILE = "report.html"

__all__ = ["REPORT_FILE", "ReportInputs", "load_inputs", "report"]


def files_dir(html: Path) -> Path:
    """Folder of the figures beside ``html``: ``report.html`` -> ``report_files/``."""
    return html.with_name(f"{html.stem}_files")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def report(
    metrics_dir: str | os.PathLike[str],
    *,
    n_tiles: int | None = None,
    out: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = ("svg", "pdf"),
) -> Path:
    """Write the HTML report of every finished evaluation and return its path.

    Reads ``<metrics_dir>/<n>_tiles/<model>/`` (``metrics.parquet``, ``results.csv``,
    ``run.json``, ``provenance.json``). Writes ``out`` (default
    ``<metrics_dir>/<n>_tiles/report.html``), self-contained, the same figures as PNG,
    SVG and PDF (300 dpi) in ``<out stem>_files/`` beside it, and each model's
    ``results.json`` bundle. Raises `InputError` when there is no finished
    evaluation. ``formats``: the extra figure files (``()`` for PNG only, faster).
    """
    if out is not None:
        check_out(Path(out))  # seconds before minutes of drawing
    inputs = load_inputs(metrics_dir, n_tiles)
    html_path = Path(out) if out is not None else inputs.base / REPORT_FILE
    if html_path.is_dir():
        html_path = html_path / REPORT_FILE
    check_out(html_path)

    names = [m.name for m in inputs.models]
    colours = figures.model_colours(names)
    images: list[Image] = []
    exports: dict[str, bytes] = {}

    def keep(fig: figures.Figure | None, name: str, alt: str, caption: str) -> Image | None:
        if fig is None:
            return None
        image = Image(name, figures.png_bytes(fig), alt, caption)
        images.append(image)
        stem = name.removesuffix(".png")
        for fmt in formats:
            exports[f"{stem}.{fmt}"] = figures.export_bytes(fig, fmt)
        return image

    intervals = {m.name: model_intervals(m) for m in inputs.models}
    for m in inputs.models:
        write_bundle(m, intervals[m.name])
    errors = {
        name: (iv.get("cosine_similarity_all"), iv.get(TOP10_MEAN))
        for name, iv in intervals.items()
    }
    params = {m.name: m.params_m for m in inputs.models}
    scatter = keep(
        figures.scatter_figure(inputs.board, params, colours, errors),
        "scatter_cosine_top10.png",
        "Scatter of median cosine similarity against top-10 accuracy, one marker per model",
        "Each marker is a model (#rank, name, parameters): right is higher cosine similarity "
        "over all slide pairs, up is higher top-10 accuracy across scanners and stainings. "
        "Error bars: 95% intervals (bootstrap over stainings and scanners). Marker area grows "
        "with the parameter count; hollow markers have no known count.",
    )
    assert scatter is not None
    metrics = _metric_order(inputs)
    distributions = [
        image
        for metric in metrics
        if (
            image := keep(
                figures.distribution_figure(inputs.models, metric, colours),
                f"distribution_{metric}.png",
                f"Box plots of {figures.metric_label(metric)} per pair type and model",
                f"{figures.metric_label(metric)} of every slide pair, grouped by pair type; "
                "one box per model.",
            )
        )
        is not None
    ]
    heatmaps: dict[str, tuple[Image | None, Image | None]] = {}
    ranges = {
        by: figures.cosine_range(
            [figures.condition_matrix(m.metrics, "cosine_similarity", by)[1]
             for m in inputs.models if "cosine_similarity" in m.metrics.columns]
        )
        for by in ("scanner", "staining")
    }  # fmt: skip
    for i, run in enumerate(inputs.models, start=1):
        stem = f"model{i:02d}_{_safe(run.name)}"
        heatmaps[run.name] = (
            keep(
                figures.condition_heatmaps(run, "scanner", ranges["scanner"]),
                f"{stem}_scanners.png",
                f"{run.name}: scanner by scanner heatmaps of median top-10 accuracy and cosine",
                f"{run.name}: each cell compares two scanners on slides of the same staining "
                "(median over stainings).",
            ),
            keep(
                figures.condition_heatmaps(run, "staining", ranges["staining"]),
                f"{stem}_stainings.png",
                f"{run.name}: staining by staining heatmaps of median top-10 accuracy and cosine",
                f"{run.name}: each cell compares two stainings on slides from the same scanner "
                "(median over scanners).",
            ),
        )

    folder = files_dir(html_path)
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        _write(folder / image.name, image.png)
    for name, data in exports.items():
        _write(folder / name, data)
    current = {image.name for image in images} | set(exports)
    for pattern in ("*.png", "*.svg", "*.pdf"):
        for stale in folder.glob(pattern):
            if stale.name not in current:
                stale.unlink(missing_ok=True)
    page = render(
        inputs, scatter, distributions, heatmaps,
        demo=is_demo(inputs), sections=extra_sections(inputs),
    )  # fmt: skip
    _write(html_path, page.encode("utf-8"))
    return html_path


def check_out(path: Path) -> None:
    """One line (``InputError``) when the report cannot be written at ``path``.

    Checks the suffix and that the nearest existing folder above it takes a file (a
    probe file, removed at once): nothing is created, so a refused path leaves no trace.
    """
    html_path = path / REPORT_FILE if path.is_dir() else path
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {html_path}: expected a .html file")
    check_writable_dir(html_path.parent, f"--out {html_path}:")


def _write(path: Path, data: bytes) -> None:
    """Write atomically, readable by all (a report is meant to be shared)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o644)


def _metric_order(inputs: ReportInputs) -> list[str]:
    """Per-pair metrics present in any model, in report order."""
    ks = sorted({k for m in inputs.models for k in m.top_k})
    from plismbench.metrics.catalogue import metric_names

    wanted = metric_names(ks)
    return [w for w in wanted if any(w in m.metrics.columns for m in inputs.models)]
