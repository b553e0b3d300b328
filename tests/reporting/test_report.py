"""The report's figures, its HTML (self-contained) and its CLI."""

from __future__ import annotations

import base64
import io
import itertools
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

import plismbench
from plismbench.cli import app
from plismbench.data.catalogue import SCANNERS, STAININGS, pair_type, parse_slide_id, slide_id
from plismbench.errors import InputError
from plismbench.reporting import figures, files_dir, load_inputs
from plismbench.reporting.inputs import provenance_params_m

DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*data-file="([^"]+)"')


def _pairs(stainings: tuple[str, ...], scanners: tuple[str, ...]) -> pl.DataFrame:
    """Per-pair metrics of every slide pair; the value encodes the two slides."""
    ids = [slide_id(st, sc) for st in stainings for sc in scanners]
    rows = []
    for a, b in itertools.combinations(ids, 2):
        sa, sb = parse_slide_id(a), parse_slide_id(b)
        value = (STAININGS.index(sa.staining) + SCANNERS.index(sa.scanner)) / 100
        rows.append(
            {
                "slide_a": a, "slide_b": b, "staining_a": sa.staining, "scanner_a": sa.scanner,
                "staining_b": sb.staining, "scanner_b": sb.scanner, "pair_type": pair_type(sa, sb),
                "cosine_similarity": value, "top_10_accuracy": value,
            }
        )  # fmt: skip
    return pl.DataFrame(rows)


def test_full_plism_gives_7x7_and_13x13_matrices() -> None:
    metrics = _pairs(STAININGS, SCANNERS)
    assert metrics.height == 91 * 90 // 2
    labels, m, n_other = figures.condition_matrix(metrics, "top_10_accuracy", "scanner")
    assert labels == list(SCANNERS) and m.shape == (7, 7) and n_other == 13
    assert np.isnan(np.diag(m)).all()
    off = ~np.eye(7, dtype=bool)
    assert np.isfinite(m[off]).all() and np.array_equal(m, m.T, equal_nan=True)
    # AT2 vs P: slide_a is the AT2 slide of each staining; median over the 13 stainings.
    want = np.median([(i + SCANNERS.index("AT2")) / 100 for i in range(13)])
    assert m[0, SCANNERS.index("P")] == pytest.approx(want)
    labels, m, n_other = figures.condition_matrix(metrics, "cosine_similarity", "staining")
    assert labels == list(STAININGS) and m.shape == (13, 13) and n_other == 7
    assert np.isfinite(m[~np.eye(13, dtype=bool)]).all()


def test_fewer_conditions_give_smaller_matrices_with_blank_cells() -> None:
    metrics = _pairs(("GM", "GIV"), ("P", "AT2", "SQ"))
    # Drop the AT2 vs SQ pairs of both stainings: that cell must be blank.
    at2_sq = pl.col("scanner_a").is_in(["AT2", "SQ"]) & pl.col("scanner_b").is_in(["AT2", "SQ"])
    metrics = metrics.filter(~(at2_sq & (pl.col("scanner_a") != pl.col("scanner_b"))))
    labels, m, n_other = figures.condition_matrix(metrics, "top_10_accuracy", "scanner")
    assert labels == ["AT2", "P", "SQ"] and n_other == 2
    assert np.isnan(m[0, 2]) and np.isnan(m[2, 0]) and np.isfinite(m[0, 1])
    labels, m, _ = figures.condition_matrix(metrics, "top_10_accuracy", "staining")
    assert labels == ["GIV", "GM"] and m.shape == (2, 2)
    one = _pairs(("GM", "GIV"), ("P",))
    _, m, _ = figures.condition_matrix(one, "top_10_accuracy", "scanner")
    assert m.shape == (1, 1) and np.isnan(m).all()


def test_report_writes_html_and_pngs(report_html: Path, metrics_dir: Path) -> None:
    assert report_html == metrics_dir / "24_tiles" / "report.html"
    html = report_html.read_text(encoding="utf-8")
    embedded = {name: base64.b64decode(data) for data, name in DATA_URI.findall(html)}
    pngs = {p.name: p.read_bytes() for p in files_dir(report_html).glob("*.png")}
    # 1 scatter, 4 distributions (cosine, top-10, mrr, median rank), 2 x 3 heatmaps.
    assert len(pngs) == 1 + 4 + 6
    assert embedded == pngs  # the same figures inline and beside the HTML
    for name, png in pngs.items():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10, f"{name} looks blank"
    scatter = Image.open(io.BytesIO(pngs["scatter_cosine_top10.png"]))
    assert scatter.size == (round(figures.WIDTH * figures.DPI), round(7.5 * figures.DPI))


def test_html_is_self_contained(report_html: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    assert not re.search(r"""src\s*=\s*["']?(https?:)?//""", html)  # links may leave, loads not
    assert "url(" not in html and "@import" not in html
    assert "<script" not in html and "<link" not in html and "<iframe" not in html
    srcs = re.findall(r'<img[^>]+src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_report_content(report_html: Path, metrics_dir: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    board = plismbench.leaderboard(metrics_dir, write=False)
    for row in board.iter_rows(named=True):
        assert f">{row['model']}<" in html
        assert f'title="{row["leaderboard_metric"]!r}"' in html  # full precision, tooltip
        assert repr(row["top_10_cross_scanner_cross_staining"]) in html
    files = [name for _, name in DATA_URI.findall(html)]
    partial = [f for f in files if f.endswith("_partial_scanners.png")]
    assert len(partial) == 1  # 2 x 2 is drawn too, as a 2 x 2
    size = Image.open(files_dir(report_html) / partial[0]).size
    full = next(f for f in files if f.endswith("_good_scanners.png"))
    assert size[1] < Image.open(files_dir(report_html) / full).size[1]  # same width, fewer rows
    # Provenance of ``good`` (meta.json) and its absence for the others.
    assert "ab" * 32 in html and "versions.torch" in html and "/data/plism" in html
    assert html.count("provenance is unknown") == 2
    assert "no weights" in html  # hed-histogram: 0 parameters, from the registry


def test_inputs_and_parameter_counts(metrics_dir: Path) -> None:
    inputs = load_inputs(metrics_dir)
    params = {m.name: m.params_m for m in inputs.models}
    assert params == {"good": None, "hed-histogram": 0.0, "partial": None}
    assert provenance_params_m({"s": {"params_m": 86}}) == 86.0
    assert provenance_params_m({"s": {"n_params": 2_000_000}}) == 2.0
    assert provenance_params_m({"s": {"model": "x"}}) is None


def test_out_path_and_rerun(tiny_metrics_dir: Path, tmp_path: Path) -> None:
    out = plismbench.report(
        tiny_metrics_dir, n_tiles=8, out=tmp_path / "sub" / "mine.html", formats=()
    )
    assert (
        out.is_file() and (tmp_path / "sub" / "mine_files" / "scatter_cosine_top10.png").is_file()
    )
    stale = tmp_path / "sub" / "mine_files" / "old.png"
    stale.write_bytes(b"x")
    plismbench.report(tiny_metrics_dir, out=out, formats=())
    assert not stale.exists()
    html = out.read_text(encoding="utf-8")
    assert (
        "distribution_top_1_accuracy.png" in html
        and len(re.findall(r"data-file=\"[^\"]*_scanners.png", html)) == 2
    )
    assert not list((tmp_path / "sub").glob(".*.tmp"))


def test_errors(tmp_path: Path, metrics_dir: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        plismbench.report(tmp_path / "missing")
    (tmp_path / "m" / "24_tiles" / "unfinished").mkdir(parents=True)
    with pytest.raises(InputError, match="no finished evaluations"):
        plismbench.report(tmp_path / "m")
    with pytest.raises(InputError, match=r"\.html"):
        plismbench.report(metrics_dir, out=tmp_path / "report.pdf")
    with pytest.raises(InputError, match="no evaluated models"):
        plismbench.report(metrics_dir, n_tiles=99)


def test_damaged_outputs_are_one_line(tiny_metrics_dir: Path, tmp_path: Path) -> None:
    import shutil

    for damage in ("run.json", "results.csv", "missing results.csv"):
        root = tmp_path / damage.replace(" ", "_") / "metrics"
        shutil.copytree(tiny_metrics_dir, root)
        beta = root / "8_tiles" / "beta"
        if damage == "run.json":
            (beta / "run.json").write_text("{not json")
        elif damage == "results.csv":
            (beta / "results.csv").write_text("a,b\n1,2,3,4\n")
        else:
            (beta / "results.csv").unlink()
        with pytest.raises(InputError, match="unreadable evaluation outputs"):
            plismbench.report(root)


def test_captions_are_escaped(tiny_metrics_dir: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "metrics"
    shutil.copytree(tiny_metrics_dir, root)
    (root / "8_tiles" / "beta").rename(root / "8_tiles" / "b<i>x&y")
    html = plismbench.report(root, formats=()).read_text(encoding="utf-8")
    assert "b<i>x" not in html
    assert "<figcaption>b&lt;i&gt;x&amp;y: each cell" in html


def test_cli(tiny_metrics_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.html"
    args = ["report", "--metrics-dir", str(tiny_metrics_dir), "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "cli.html" in res.output and out.is_file()
    res = runner.invoke(app, ["report", "--metrics-dir", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "metrics directory not found" in res.output


def test_p_values_have_two_significant_digits() -> None:
    from plismbench.reporting.html import p_value

    got = [p_value(p) for p in (0.00799, 0.003, 0.0829, 0.5, 1.0, 0.001, 0.00099, 0.0, None)]
    want = ["0.0080", "0.0030", "0.083", "0.50", "1.0", "0.0010", "&lt;0.001", "&lt;0.001"]
    assert got == [*want, "n/a"]
    assert p_value(float("nan")) == "n/a"


def test_weight_free_models_show_no_digest() -> None:
    import hashlib

    from plismbench.reporting.html import EMPTY_SHA256, _quiet

    assert hashlib.sha256(b"").hexdigest() == EMPTY_SHA256
    assert _quiet({"weights_sha256": EMPTY_SHA256})["weights_sha256"] == "none (no weights)"
    assert _quiet({"weights_sha256": "ab" * 32})["weights_sha256"] == "ab" * 32


def test_one_colour_scale_statement_and_linked_terms(report_html: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    assert "own range" not in html  # the cosine scale is shared; the colourbars say so
    assert "one scale shared by every model" in html
    links = set(re.findall(r'href="#(def-[a-z0-9-]+)"', html))
    assert {"def-top-k", "def-ci", "def-holm", "def-cosine"} <= links
    assert all(f'id="{d}"' in html for d in links)  # every link has its definition
    assert all(f'id="def-{k}"' in html for k in ("ri", "global-top-k"))
    assert "<title>plismbench report" in html and "demo" not in html.split("</title>")[0]


def test_heatmap_numbers_are_readable_at_1400px() -> None:
    """Cell numbers are at least 11 px on the page (content 1,314 px wide at 1,400)."""
    from matplotlib.text import Text

    from plismbench.reporting.inputs import ModelRun

    for stainings, scanners, by in ((STAININGS, SCANNERS[:2], "staining"),
                                    (STAININGS[:2], SCANNERS, "scanner")):  # fmt: skip
        run = ModelRun("m", Path("."), _pairs(stainings, scanners), pl.DataFrame(), {})
        fig = figures.condition_heatmaps(run, by)
        assert fig is not None
        width_px = fig.get_figwidth() * figures.DPI
        shown = min(1.0, 1314 / width_px)
        cells = [t for ax in fig.axes for t in ax.texts if isinstance(t, Text)]
        assert len(cells) >= 2 * 2  # the numbers are there
        smallest = min(t.get_fontsize() for t in cells) * figures.DPI / 72 * shown
        assert smallest >= 11, (by, smallest)
        assert width_px <= 1314 + 1  # never shrunk to fit


def test_report_out_is_checked_before_drawing(
    tiny_metrics_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_drawing(*args: object, **kwargs: object) -> None:
        raise AssertionError("drew a figure before checking --out")

    monkeypatch.setattr(figures, "scatter_figure", no_drawing)
    monkeypatch.setattr(plismbench.reporting, "load_inputs", no_drawing)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in ("/proc/x/r.html", str(blocker / "r.html")):
        args = ["report", "--metrics-dir", str(tiny_metrics_dir), "--out", bad]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and "--out" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing created
