"""``plismbench run`` checks device, output folder and model access before the data stage;
the CLI group's own behaviour (Ctrl-C, --version, help) for every command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from plismbench import pipeline
from plismbench.cli import app
from plismbench.cli.app import COMMAND_ORDER

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_cuda_on_a_cpu_machine_fails_before_the_data_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--device", "cuda", "--out-dir", str(out)])
    assert res.exit_code == 2, res.output
    assert "no CUDA GPU is visible here" in res.output
    assert not (out / "data").exists()  # the demo did not synthesise its tiles first


def test_run_unwritable_output_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for bad in ("/proc/x", str(tmp_path / "file" / "out")):
        res = runner.invoke(app, ["run", "--model", "hed-histogram", "--out-dir", bad])
        assert res.exit_code == 2, res.output
        assert "--out-dir" in res.output and res.output.count("\n") == 1


def test_run_offline_without_cached_weights_fails_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    res = CliRunner(env={"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}).invoke(
        app, ["run", "--model", "h0-mini", "--out-dir", str(out)]
    )
    assert res.exit_code == 2, res.output
    assert "HF_HUB_OFFLINE" in res.output and "h0-mini" in res.output
    assert not (out / "data").exists()


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    res = runner.invoke(app, ["run", "--out-dir", str(tmp_path)])
    assert res.exit_code == 130
    assert res.output.strip() == "interrupted; run the same command again to resume"


def test_version_and_help() -> None:
    from plismbench import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"plismbench {__version__}"
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    names = group.list_commands(ctx)
    known = [n for n in COMMAND_ORDER if n in names]
    assert names[: len(known)] == known  # pipeline order
    for name in names:
        command = group.get_command(ctx, name)
        for param in command.get_params(ctx):
            assert param.help, f"{name} {param.opts} has no help text"
        text = runner.invoke(app, [name, "--help"]).output
        assert "<bool>" not in text, name


def test_preflight_checks_free_disk_for_the_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from plismbench.data import hub
    from plismbench.errors import InputError
    from plismbench.extractors.registry import get_extractor

    monkeypatch.setattr(hub, "require_online", lambda what: None)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 10**9))
    spec = get_extractor("rgb-histogram")  # 91 x 16,278 x 99 float32: about 0.6 GB
    pipeline.preflight([spec], "streaming", tmp_path, "cpu")
    big = get_extractor("h0-mini-cls-mean")  # 1,536 dims: about 9 GB
    from plismbench.extractors import access

    monkeypatch.setattr(access, "_cached", lambda hub_id: True)
    with pytest.raises(InputError, match=r"the features of 2 model\(s\) needs about \d+ GB"):
        pipeline.preflight([spec, big], "streaming", tmp_path, "cpu")


def test_run_streaming_offline_is_one_line(tmp_path: Path) -> None:
    import huggingface_hub.constants  # noqa: F401  (reads the environment once, at import)

    args = ["run", "--model", "rgb-histogram", "--source", "streaming"]
    res = CliRunner(env={"HF_HUB_OFFLINE": "1"}).invoke(app, [*args, "--out-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "--source streaming needs the Hugging Face Hub, but HF_HUB_OFFLINE is set" in res.output


def test_run_without_an_optional_package_fails_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --model conch`` without the ``conch`` package: one line, no data stage."""
    import importlib.util

    if importlib.util.find_spec("conch") is not None:
        pytest.skip("conch is installed here")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--model", "conch", "--out-dir", str(out)])
    assert res.exit_code == 2, res.output
    assert "optional package 'conch'" in res.output and res.output.count("\n") == 1
    assert not (out / "data").exists()


def test_run_with_unreachable_url_weights_fails_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URL-hosted weights (gpfm, lunit) not cached and their host down: one line first."""
    import socket
    from dataclasses import replace

    from plismbench.errors import InputError
    from plismbench.extractors.registry import get_extractor

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = replace(get_extractor("lunit-vit-s8"), url=f"http://127.0.0.1:{port}/w.torch")
    with pytest.raises(InputError, match=r"lunit-vit-s8.*not cached.*cannot be reached"):
        pipeline.preflight([spec], "synthetic", tmp_path / "out", "cpu")
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "lunit_vit_s8.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    pipeline.preflight([spec], "synthetic", tmp_path / "out", "cpu")  # cached: no probe


def test_run_does_not_take_demo_features_for_real_ones(tmp_path: Path) -> None:
    """Synthetic tiles carry the real slide ids: a later ``--source hub`` run must extract."""
    import json

    from plismbench.data.catalogue import plism_slide_ids
    from plismbench.extractors.registry import get_extractor

    spec, out = get_extractor("rgb-histogram"), tmp_path / "out"
    slides = plism_slide_ids()[:2]
    demo = pipeline._expected_source("synthetic", out)
    for sid in slides:
        folder = out / "features" / spec.folder / sid
        folder.mkdir(parents=True)
        (folder / "features.npy").write_bytes(b"")
        meta = {"model": spec.name, "precision": "fp32", "source": demo}
        (folder / "meta.json").write_text(json.dumps(meta))
    model_dir = out / "features" / spec.folder
    assert pipeline._features_complete(model_dir, slides, spec, "cpu", demo)
    real = pipeline._expected_source("hub", out)
    assert not pipeline._features_complete(model_dir, slides, spec, "cpu", real)
