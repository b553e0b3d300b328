"""``plismbench analyze`` end to end: tables, layers, reference, reuse, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from analyze_planted import COMPONENTS, expected_fractions, plant_exact, write_design
from typer.testing import CliRunner

from plismbench.analysis.report import why_section
from plismbench.cli import app

runner = CliRunner(env={"COLUMNS": "200"})
WEIGHTS = {"location": 0.9, "staining": 0.35, "scanner": 0.25, "location:staining:scanner": 0.3}


def invoke(features: Path, out: Path, *args: str) -> object:
    return runner.invoke(
        app,
        ["analyze", "--features-dir", str(features), "--out-dir", str(out), "--k", "4",
         "--folds", "3", "-q", *args],
    )  # fmt: skip


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    x = plant_exact(12, 3, 2, WEIGHTS)
    write_design(root, "planted", x)
    rng = np.random.default_rng(0)
    # A second model of the same tiles: a rotated, noisier copy, with two layers.
    y = x @ np.linalg.qr(rng.standard_normal((x.shape[-1],) * 2))[0]
    slides = write_design(root, "student", y + 0.05 * rng.standard_normal(y.shape))
    for sid, feats in slides.items():
        coords = np.load(root / "student" / sid / "features.npy")[:, :3]
        for layer, scale in (("2", 0.2), ("4", 0.1)):
            folder = root / "student" / sid / "layers" / layer
            folder.mkdir(parents=True)
            noisy = feats + scale * rng.standard_normal(feats.shape)
            np.save(folder / "features.npy", np.column_stack([coords, noisy]).astype(np.float32))
    return root


def test_tables_recover_planted_fractions(features: Path, tmp_path: Path) -> None:
    res = invoke(features, tmp_path / "a", "--model", "planted")
    assert res.exit_code == 0, res.output
    out = tmp_path / "a"
    var = pl.read_csv(out / "planted" / "variance.csv")
    got = dict(zip(var["component"], var["fraction"], strict=True))
    for name, want in expected_fractions(WEIGHTS).items():
        assert got[name] == pytest.approx(want, abs=1e-6), name
    assert set(COMPONENTS) < set(got)
    for table in ("variance_subsets", "geometry", "probes", "neighbours", "robustness"):
        assert (out / "planted" / f"{table}.csv").is_file(), table
        assert (out / f"{table}.csv").is_file(), table
    probes = pl.read_csv(out / "planted" / "probes.csv")
    assert probes["chance"].to_list() == pytest.approx([1 / 3, 1 / 2])
    info = json.loads((out / "planted" / "analysis.json").read_text())
    assert info["n_slides"] == 6 and info["layers"] == ["final"]
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_layers_reference_and_reuse(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    args = ("--model", "student", "--reference-model", "planted")
    res = invoke(features, out, *args)
    assert res.exit_code == 0, res.output
    var = pl.read_csv(out / "student" / "variance.csv", schema_overrides={"layer": pl.Utf8})
    assert sorted(set(var["layer"])) == ["2", "4", "final"]
    loc = {
        r["layer"]: r["fraction"]
        for r in var.filter(pl.col("component") == "location").iter_rows(named=True)
    }
    assert loc["final"] > loc["4"] > loc["2"]  # more noise, less location
    cka = pl.read_csv(out / "student" / "cka.csv")
    overall = cka.filter(pl.col("scope") == "all")
    # A rotated copy with a little noise. The planted locations are equidistant (simplex
    # rows), so all their structure sits on the kernel's diagonal, which the debiased
    # estimator leaves out: only the biased value sees it (tests/analysis/test_cka.py
    # checks the debiased one on realistic designs).
    assert overall["cka_biased"][0] > 0.95
    assert set(cka["n_samples"]) == {12}  # distinct locations in every scope
    assert {"cka_null", "cka_null_q95", "cka_minus_null", "p_value"} <= set(cka.columns)
    assert (out / "student" / "angles.csv").is_file()
    assert (out / "planted" / "variance.csv").is_file()  # the reference is analysed too
    html = why_section(out)
    assert html.startswith('<div class="why">') and html.count("<img") == 4
    for name in ("variance", "probes", "neighbours", "layers"):
        assert (out / "figures" / f"{name}.png").is_file()
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert "student" in html and "planted" in html
    # The per-layer retrieval, the CKA null, the offset share and the chance values.
    assert "layer by layer (MAP@R)" in html and "2: " in html and "4: " in html
    assert "null mean" in html and "offset share" in html and 'class="chance"' in html
    again = invoke(features, out, *args)
    assert again.exit_code == 0 and "reused: student, planted" in " ".join(again.output.split())
    only = invoke(features, out, "--model", "student", "--layers", "4", "--reference-model",
                  "planted")  # fmt: skip
    assert only.exit_code == 0, only.output
    var = pl.read_csv(out / "student" / "variance.csv", schema_overrides={"layer": pl.Utf8})
    assert sorted(set(var["layer"])) == ["4", "final"]


def test_why_section_is_empty_without_analysis(tmp_path: Path) -> None:
    assert why_section(tmp_path / "absent") == ""
    assert why_section(tmp_path) == ""


def _one_error_line(res: object, *needles: str) -> None:
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    text = " ".join(res.output.split())  # type: ignore[attr-defined]
    assert text.startswith("Error:") and "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def test_bad_input_is_one_line_and_leaves_no_output(features: Path, tmp_path: Path) -> None:
    f = tmp_path / "f"
    shutil.copytree(features, f)
    out = tmp_path / "out"
    # Layers asked but absent.
    _one_error_line(invoke(f, out, "--model", "planted", "--layers", "4"), "layer(s) 4 not found")
    # Unbalanced design: one slide missing (and a good model before it: nothing written).
    shutil.rmtree(next((f / "planted").iterdir()))
    _one_error_line(
        invoke(f, out, "--model", "student", "--model", "planted"), "unbalanced design", "missing"
    )
    assert not out.exists()
    # Mismatched coordinates.
    sid = next(p for p in (f / "student").iterdir())
    data = np.load(sid / "features.npy")
    data[3, 1] += 224
    np.save(sid / "features.npy", data)
    _one_error_line(invoke(f, out, "--model", "student"), "coordinates differ")
    assert not out.exists()
    # Fewer than 2 scanners.
    x = plant_exact(5, 3, 1, {"location": 1.0, "staining": 0.5})
    write_design(f, "onescanner", x)
    _one_error_line(invoke(f, out, "--model", "onescanner"), "1 scanner(s)")
    assert not out.exists()


def test_run_stage_reuses_and_skips_what_it_cannot_analyse(features: Path, tmp_path: Path) -> None:
    from plismbench.analysis.stage import run_stage

    lines: list[str] = []
    out = tmp_path / "analysis"
    assert run_stage(["planted"], features, out, log=lines.append) is True
    assert run_stage(["planted"], features, out, log=lines.append) is False  # unchanged: reused
    bad = tmp_path / "bad"
    shutil.copytree(features / "planted", bad / "planted")
    shutil.rmtree(next((bad / "planted").iterdir()))
    assert run_stage(["planted"], bad, tmp_path / "other", log=lines.append) is False
    assert lines[-1].startswith("analyze: skipped (") and "unbalanced design" in lines[-1]
    assert not (tmp_path / "other").exists()


def test_tile_options_and_k_checks(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    res = invoke(features, out, "--model", "planted", "--n-tiles", "10", "--sample-tiles", "6")
    assert res.exit_code == 0, res.output
    info = json.loads((out / "planted" / "analysis.json").read_text())
    assert (info["n_tiles"], info["sample_tiles"]) == (10, 6)
    probes = pl.read_csv(out / "planted" / "probes.csv")
    assert probes["n_rows"].to_list() == [36, 36]  # 6 locations x 6 slides
    _one_error_line(invoke(features, tmp_path / "d", "--model", "planted", "--k", "500"), "--k 500")
    _one_error_line(invoke(features, tmp_path / "d", "--model", "planted", "--n-tiles", "99"),
                    "--n-tiles 99")  # fmt: skip
    assert not (tmp_path / "d").exists()


def test_gathered_tables_drop_what_no_model_has_any_more(features: Path, tmp_path: Path) -> None:
    from plismbench.analysis import analyze

    out = tmp_path / "g"
    common = {"k": 4, "folds": 2, "layers": "none", "robustness_index": False}
    analyze(["student"], features, out, reference_model="planted", **common)
    assert (out / "cka.csv").is_file() and not (out / "robustness.csv").exists()
    analyze(["student", "planted"], features, out, overwrite=True, **common)
    assert not (out / "cka.csv").exists() and not (out / "angles.csv").exists()
    assert set(pl.read_csv(out / "variance.csv")["model"]) == {"student", "planted"}


def test_every_bad_value_is_refused_before_anything_is_computed(
    features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plismbench.analysis.api as api

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed before every input was checked")

    monkeypatch.setattr(api, "analyse_view", never)
    f = tmp_path / "f"
    shutil.copytree(features, f)
    out = tmp_path / "out"
    for folds in ("0", "1"):
        res = runner.invoke(
            app, ["analyze", "--features-dir", str(f), "--out-dir", str(out), "-q",
                  "--model", "planted", "--folds", folds],
        )  # fmt: skip
        _one_error_line(res, f"--folds {folds}")
    x = plant_exact(6, 2, 2, {"location": 1.0})
    write_design(f, "constant", np.ones_like(x))
    _one_error_line(invoke(f, out, "-m", "planted", "-m", "constant"), "same features")
    write_design(f, "onedim", x[..., :1] + 2.0)
    _one_error_line(invoke(f, out, "-m", "planted", "-m", "onedim"), "1 dimension")
    bad = x.copy()
    bad[1, 1, 3, 2] = np.nan
    write_design(f, "nan", bad)
    _one_error_line(invoke(f, out, "-m", "planted", "-m", "nan"), "NaN")
    assert not out.exists()


def test_probe_reports_whether_it_converged(features: Path, tmp_path: Path) -> None:
    from plismbench.analysis import analyze
    from plismbench.analysis.probes import probe_accuracy

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.standard_normal((120, 20)) + 3 * rng.standard_normal((3, 20))[y]
    groups = np.tile(np.arange(40), 3)
    assert probe_accuracy(x, y, groups, folds=3)[2] is True
    assert probe_accuracy(x, y, groups, folds=3, max_iter=1)[2:] == (False, 1)
    lines: list[str] = []
    analyze(["planted"], features, tmp_path / "p", k=4, folds=2, probe_max_iter=1,
            robustness_index=False, log=lines.append)  # fmt: skip
    assert any("did not converge in 1 iterations" in line for line in lines), lines
    probes = pl.read_csv(tmp_path / "p" / "planted" / "probes.csv")
    assert not any(probes["converged"])
