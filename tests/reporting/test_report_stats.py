"""The report's statistics and paper-ready output: intervals, 3 decimals, one colour
scale, SVG/PDF exports, results.json, demo banner, quiet provenance, extra sections."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import plismbench
from plismbench.reporting import figures, files_dir, load_inputs
from plismbench.reporting.html import provenance_table
from plismbench.reporting.inputs import ModelRun
from plismbench.store.evaluation import RunRecord


def test_exports_and_bundles(report_html: Path, metrics_dir: Path) -> None:
    folder = files_dir(report_html)
    pngs = sorted(p.stem for p in folder.glob("*.png"))
    assert sorted(p.stem for p in folder.glob("*.svg")) == pngs
    assert sorted(p.stem for p in folder.glob("*.pdf")) == pngs
    for stem in pngs:
        assert (folder / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert b"<svg" in (folder / f"{stem}.svg").read_bytes()[:2000]
    for model in ("good", "hed-histogram", "partial"):
        bundle = json.loads((metrics_dir / "24_tiles" / model / "results.json").read_text())
        assert bundle["model"] == model and bundle["plismbench"] and bundle["n_tiles"] == 24
        assert {"dataset", "model_hub_id", "weights_sha256", "tile_subset"} <= set(bundle)
        score = bundle["leaderboard"]["leaderboard_metric"]
        if model != "partial":  # 2 x 2 slides: every pair type, a score with an interval
            assert score["ci_low"] <= score["value"] <= score["ci_high"]
        assert {"median_ci_low", "median_ci_high"} <= set(bundle["results"][0])
    good = json.loads((metrics_dir / "24_tiles" / "good" / "results.json").read_text())
    assert good["weights_sha256"] == "ab" * 32 and good["dataset"]["source"]["path"]
    # the weights' and the tiles' commits (meta.json hub_revision, source revision)
    assert (good["model_hub_revision"], good["dataset"]["revision"]) == ("c" * 40, "d" * 40)


def test_leaderboard_table_is_3_decimals_with_intervals(report_html: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    table = html[html.index('<table id="leaderboard"') : html.index("</table>", html.index(
        '<table id="leaderboard"'))]  # fmt: skip
    found = re.findall(r">\d\.\d{3}<br><span class=\"cis\">\d\.\d{3}&ndash;\d\.\d{3}</span>", table)
    assert len(found) >= 2 * 5  # two ranked models: four components and the score each
    shown = re.findall(r"\b\d\.\d+\b(?![^<]*\")", re.sub(r'title="[^"]*"', "", table))
    assert shown and all(len(v.split(".")[1]) == 3 for v in shown)  # never 16 digits
    assert '<div class="scroll"><table id="leaderboard"' in html
    assert "Group" in table and "Status" in table
    assert "Demo data" not in html and "created" not in html


def test_heatmaps_share_one_cosine_scale(metrics_dir: Path) -> None:
    inputs = load_inputs(metrics_dir)
    mats = [figures.condition_matrix(m.metrics, "cosine_similarity", "scanner")[1]
            for m in inputs.models]  # fmt: skip
    lo, hi = figures.cosine_range(mats)
    finite = np.concatenate([m[np.isfinite(m)] for m in mats])
    assert (lo, hi) == (finite.min(), finite.max())
    for run in inputs.models:
        fig = figures.condition_heatmaps(run, "scanner", (lo, hi))
        assert fig is not None
        cos_image = fig.axes[1].images[0]
        assert cos_image.get_clim() == (lo, hi)
        texts = [t.get_text() for t in fig.axes[1].texts]
        assert texts and all(len(t.split(".")[1]) == (3 if hi - lo < 0.3 else 2) for t in texts)


def test_scatter_has_error_bars(metrics_dir: Path) -> None:
    inputs = load_inputs(metrics_dir)
    colours = figures.model_colours([m.name for m in inputs.models])
    errors = {m.name: ((0.1, 0.9), (0.2, 0.8)) for m in inputs.models}
    fig = figures.scatter_figure(inputs.board, {}, colours, errors)
    assert len(fig.axes[0].containers) >= 2  # one ErrorbarContainer per finite model


def _run(provenance: dict) -> ModelRun:
    import polars as pl

    frame = pl.DataFrame()
    return ModelRun("m", Path("."), frame, frame, RunRecord(n_slides=2), provenance)


def test_provenance_drops_noise() -> None:
    base = {"model": "hed-histogram", "normalise": False, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225]}  # fmt: skip
    html = provenance_table(_run({
        "a": {**base, "created": "2025-01-01T00:00:00Z"},
        "b": {**base, "created": "2025-01-01T00:00:07Z"},
    }))  # fmt: skip
    assert "created" not in html and "0.485" not in html and "hed-histogram" in html
    kept = provenance_table(_run({"a": {**base, "normalise": True}}))
    assert "0.485" in kept  # a model that normalises keeps its mean and std


def test_demo_banner_published_and_sections(
    tiny_metrics_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out" / "metrics"
    shutil.copytree(tiny_metrics_dir, root)
    (root / "8_tiles" / "alpha").rename(root / "8_tiles" / "hed-histogram")
    (root / "8_tiles" / "beta").rename(root / "8_tiles" / "vit-tiny-random")
    html = plismbench.report(root, formats=()).read_text(encoding="utf-8")
    assert "Demo data" in html and "random weights" in html
    assert 'id="comparisons"' in html and "Wilcoxon" in html
    assert 'id="published"' not in html  # no published model here

    (root / "8_tiles" / "vit-tiny-random").rename(root / "8_tiles" / "h0-mini")
    (tmp_path / "out" / "analysis").mkdir()
    import plismbench.analysis.report as why

    monkeypatch.setattr(why, "why_section", lambda d: f'<section id="why"><p>{Path(d).name}</p>')
    html = plismbench.report(root, formats=()).read_text(encoding="utf-8")
    assert "Demo data" not in html
    assert 'id="published"' in html and "H0-Mini (published #1)" in html and "0.541" in html
    assert "not 8,139" in html
    assert '<section id="why"><p>analysis</p>' in html and 'href="#why"' in html


def test_demo_detection_from_the_source() -> None:
    import polars as pl

    from plismbench.reporting.inputs import ReportInputs
    from plismbench.reporting.sections import is_demo

    def inputs(source: dict) -> ReportInputs:
        prov = {"s": {"source": source}}
        run = ModelRun("uni", Path("."), pl.DataFrame(), pl.DataFrame(), RunRecord(), prov)
        return ReportInputs(Path("."), 8, Path("."), pl.DataFrame(), [run])

    assert is_demo(inputs({"type": "h5", "download_dir": "/x/out/data/synthetic"}))
    assert not is_demo(inputs({"type": "h5", "download_dir": "/data/synthesis-lab/plism"}))


def test_scatter_labels_collide_neither_with_each_other_nor_the_legend() -> None:
    import itertools

    import polars as pl

    close = [("h0-mini", 0.80, 0.45), ("conch", 0.801, 0.452), ("uni", 0.802, 0.449),
             ("virchow2", 0.6, 0.3)]  # fmt: skip
    board = pl.DataFrame([
        {"rank": i + 1, "model": n, "cosine_similarity_all": x, "top_10_cross_scanner": y,
         "top_10_cross_staining": y, "top_10_cross_scanner_cross_staining": y}
        for i, (n, x, y) in enumerate(close)
    ])  # fmt: skip
    colours = figures.model_colours(board["model"].to_list())
    fig = figures.scatter_figure(board, {"h0-mini": 86.0, "uni": 300.0}, colours)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 4
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not any(box.overlaps(legend) for box in boxes)


def test_worst10_table_and_comparison_rows(report_html: Path, metrics_dir: Path) -> None:
    """The mean of the worst 10% of pairs: a table row per model with intervals, and its
    paired differences beside the medians' in the comparisons; in results.json too."""
    html = report_html.read_text(encoding="utf-8")
    start = html.index('<table id="worst10"')
    table = html[start : html.index("</table>", start)]
    for model in ("good", "hed-histogram"):
        assert f'<td class="l">{model}</td>' in table
    assert re.search(r">-?\d\.\d{3}<br><span class=\"cis\">", table)
    start = html.index('<table id="comparisons"')
    assert "worst 10% mean" in html[start : html.index("</table>", start)]
    bundle = json.loads((metrics_dir / "24_tiles" / "good" / "results.json").read_text())
    assert {"worst10_mean", "worst10_ci_low", "worst10_ci_high"} <= set(bundle["results"][0])
