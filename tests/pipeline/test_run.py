"""``plismbench run`` end to end on a tiny synthetic PLISM, and its resumability."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from plismbench import pipeline
from plismbench.cli import app
from plismbench.data.synth import synth

runner = CliRunner(env={"COLUMNS": "200"})
MODELS = ["hed-histogram", "rgb-histogram"]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synth(out, n_tiles=8, stainings=["GIV", "GM", "HR"], scanners=["AT2", "P"], seed=1)
    return out


def _args(tiles: Path, out: Path, *extra: str) -> list[str]:
    models = [x for m in MODELS for x in ("--model", m)]
    return ["run", *models, "--source", str(tiles), "--out-dir", str(out), "--quiet", *extra]


def test_run_end_to_end(tiles: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, _args(tiles, tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "Leaderboard" in res.output and "hed-histogram" in res.output
    base = tmp_path / "out" / "metrics" / "8_tiles"
    for m in MODELS:
        assert (
            tmp_path / "out" / "features" / m / "GIV_AT2_to_GMH_S60.tif" / "features.npy"
        ).is_file()
        assert (base / m / "run.json").is_file()
        prov = json.loads((base / m / "provenance.json").read_text())
        assert len(prov) == 6  # extract's meta.json reached the evaluate outputs
    board = pl.read_csv(base / "leaderboard.csv")
    assert sorted(board["model"]) == sorted(MODELS)
    assert "DEMO" not in res.output


def test_run_resumes_without_redoing_finished_stages(
    tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plismbench.evaluation as evaluate_pkg

    real = evaluate_pkg.evaluate
    seen: list[str] = []

    def crash_on_second(model: str, *a, **k):
        seen.append(model)
        if len(seen) == 2:
            raise KeyboardInterrupt("killed during the second evaluation")
        return real(model, *a, **k)

    monkeypatch.setattr(evaluate_pkg, "evaluate", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(MODELS, source=tiles, output_dir=tmp_path / "out", progress=False)
    monkeypatch.setattr(evaluate_pkg, "evaluate", real)

    out = tmp_path / "out"
    feats = out / "features" / MODELS[1] / "GIV_AT2_to_GMH_S60.tif" / "features.npy"
    # run.json is rewritten (same content) on reuse; the metrics themselves are not.
    first_run = out / "metrics" / "8_tiles" / MODELS[0] / "metrics.parquet"
    stamps = feats.stat().st_mtime_ns, first_run.stat().st_mtime_ns
    assert not (out / "metrics" / "8_tiles" / MODELS[1] / "run.json").exists()

    result = pipeline.run(MODELS, source=tiles, output_dir=out, progress=False)
    # finished slides were not re-extracted and the finished evaluation was reused
    assert (feats.stat().st_mtime_ns, first_run.stat().st_mtime_ns) == stamps
    assert (out / "metrics" / "8_tiles" / MODELS[1] / "run.json").is_file()
    assert sorted(result.leaderboard["model"]) == sorted(MODELS)


def test_features_complete_needs_meta_of_this_model_and_precision(tmp_path: Path) -> None:
    from plismbench.extractors.registry import get_extractor

    spec = get_extractor("rgb-histogram")
    ids = ["A_X_1", "B_Y_1"]
    assert not pipeline._features_complete(tmp_path, ids, spec, "cpu")
    for sid in ids:
        (tmp_path / sid).mkdir()
        (tmp_path / sid / "features.npy").write_bytes(b"")
    # features.npy alone (no meta.json) is not a finished slide
    assert not pipeline._features_complete(tmp_path, ids, spec, "cpu")
    for sid in ids:
        meta = {"model": spec.name, "precision": "fp32"}
        (tmp_path / sid / "meta.json").write_text(json.dumps(meta))
    assert pipeline._features_complete(tmp_path, ids, spec, "cpu")
    assert not pipeline._features_complete(tmp_path, None, spec, "cpu")
    # another model's features, or another precision, planted in the folder
    (tmp_path / ids[1] / "meta.json").write_text(json.dumps({"model": "hed-histogram"}))
    assert not pipeline._features_complete(tmp_path, ids, spec, "cpu")
    meta = {"model": spec.name, "precision": "bf16"}
    (tmp_path / ids[1] / "meta.json").write_text(json.dumps(meta))
    assert not pipeline._features_complete(tmp_path, ids, spec, "cpu")


def test_run_json_and_errors(tiles: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, [*_args(tiles, tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["demo"] is False and data["n_tiles"] == 8
    assert [r["model"] for r in data["leaderboard"]] and "leaderboard_metric" in data[
        "leaderboard"
    ][0]
    res = runner.invoke(
        app, ["run", "--model", "hed-histogram", "--source", str(tmp_path / "none")]
    )
    assert res.exit_code != 0 and "--source" in res.output
    res = runner.invoke(app, ["run", "--model", "no-such-model", "--source", str(tiles)])
    assert res.exit_code != 0 and "unknown model" in res.output
