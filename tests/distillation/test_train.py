"""End-to-end runs: the tiny run of the issue, frozen teacher, resume after SIGKILL,
2-process gloo DDP, the exported student through the registry and extract, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from plismbench.distillation import distill
from plismbench.distillation.build import build
from plismbench.distillation.config import config_from
from plismbench.distillation.step import METRIC_KEYS, train_step, views

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from distill_run import TEACHER, TINY  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
STEPS = 4


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _wait(procs: list[subprocess.Popen[bytes]], timeout: float = 300) -> list[int]:
    """Exit codes; on a timeout every process still running is killed, then the test fails."""
    try:
        return [p.wait(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        raise


def _popen(cmd: list[str]) -> subprocess.Popen[bytes]:
    """A child in its own process group (a timeout kills it and its workers)."""
    return subprocess.Popen(cmd, env=ENV, start_new_session=True)


def _script(*args: object) -> list[str]:
    return [sys.executable, str(HERE / "distill_run.py"), *map(str, args)]


@pytest.fixture(scope="module")
def runs(he_tiles: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference, killed-then-resumed and 2-process DDP runs of the same tiny recipe."""
    root = tmp_path_factory.mktemp("runs")
    ref, killed, ddp = root / "ref", root / "killed", root / "ddp"
    procs = [
        _popen(_script(ref, he_tiles, STEPS)),
        _popen(_script(killed, he_tiles, STEPS, "--kill-at", 3)),
    ]
    codes = _wait(procs)
    assert codes[0] == 0 and codes[1] == -9, codes
    assert [m["step"] for m in _metrics(killed)] == [0, 1, 2]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", *_script(ddp, he_tiles, STEPS)[1:]]  # fmt: skip
    procs = [
        _popen(_script(killed, he_tiles, STEPS, "--resume")),
        _popen(torchrun),
    ]
    codes = _wait(procs)
    assert codes == [0, 0], codes
    return {"ref": ref, "killed": killed, "ddp": ddp}


def test_resume_after_sigkill_reproduces_trajectory(runs: dict[str, Path]) -> None:
    ref, resumed = _metrics(runs["ref"]), _metrics(runs["killed"])
    assert [m["step"] for m in resumed] == list(range(STEPS))
    for a, b in zip(ref, resumed, strict=True):
        for key in METRIC_KEYS:
            assert a[key] == b[key], (a["step"], key)
    from safetensors.torch import load_file

    wa = load_file(runs["ref"] / "student" / "model.safetensors")
    wb = load_file(runs["killed"] / "student" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ddp_two_processes_match_one(runs: dict[str, Path]) -> None:
    ref, ddp = _metrics(runs["ref"]), _metrics(runs["ddp"])
    assert len(ddp) == len(ref) == STEPS
    for a, b in zip(ref, ddp, strict=True):
        for key in METRIC_KEYS:
            assert math.isclose(a[key], b[key], rel_tol=2e-4, abs_tol=1e-5), (a["step"], key)
    from safetensors.torch import load_file

    wa = load_file(runs["ref"] / "student" / "model.safetensors")
    wb = load_file(runs["ddp"] / "student" / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=1e-5)


def test_export_is_the_ema_not_the_trained_student(runs: dict[str, Path]) -> None:
    """``student/`` holds the EMA backbone of the checkpoint, which differs from the
    trained student (the EMA never feeds back into it)."""
    from safetensors.torch import load_file

    exported = load_file(runs["ref"] / "student" / "model.safetensors")
    ckpt = torch.load(runs["ref"] / "checkpoint.pt", map_location="cpu", weights_only=True)
    ema = {k.removeprefix("backbone."): v for k, v in ckpt["ema"].items()
           if k.startswith("backbone.")}  # fmt: skip
    trained = {k.removeprefix("backbone."): v for k, v in ckpt["student"].items()
               if k.startswith("backbone.")}  # fmt: skip
    assert set(exported) == set(ema)
    assert all(torch.equal(exported[k], ema[k].float()) for k in exported)
    assert any(not torch.equal(ema[k], trained[k]) for k in ema)


def test_output_dir_that_is_a_file_is_one_line(he_tiles: Path, tmp_path: Path) -> None:
    from plismbench.errors import InputError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        distill(TEACHER, output_dir=tmp_path / "afile", tiles_dir=he_tiles, steps=1, **TINY)


def test_exported_student_extracts(runs: dict[str, Path], he_tiles: Path, tmp_path: Path) -> None:
    from plismbench.data.sources import open_source
    from plismbench.extraction import extract
    from plismbench.extractors.registry import get_extractor, load_extractor

    student = runs["ref"] / "student"
    config = json.loads((student / "config.json").read_text())
    assert config["architecture"] == "vit_base_patch14_reg4_dinov2"
    assert config["pretrained_cfg"]["mean"] and config["num_features"] == 192
    spec = get_extractor(str(student))
    assert (spec.embed_dim, spec.num_prefix_tokens, spec.input_size) == (192, 5, 28)
    extractor = load_extractor(str(student))
    tiles = torch.from_numpy(np.stack([np.full((224, 224, 3), 200, np.uint8)] * 2))
    with torch.no_grad():
        feats = extractor(tiles.permute(0, 3, 1, 2))
    assert feats.shape == (2, 192) and torch.isfinite(feats).all()
    result = extract(str(student), open_source(tiles_dir=he_tiles), tmp_path, batch_size=8,
                     workers=1, device="cpu")  # fmt: skip
    assert result.tiles == 32
    arrays = list(tmp_path.rglob("features.npy"))
    assert len(arrays) == 2 and np.isfinite(np.load(arrays[0])[:, 3:]).all()


def test_teacher_is_bit_identical_and_prototypes_frozen_first(he_tiles: Path) -> None:
    torch.manual_seed(0)
    cfg = config_from(teacher=TEACHER, output_dir=Path("unused"), steps=3,
                      freeze_last_layer_steps=1, **TINY)  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    assert st.heads is not None
    before = {k: v.clone() for k, v in st.teacher.backbone.state_dict().items()}
    heads_before = {k: v.clone() for k, v in st.heads.state_dict().items()}
    proto = st.student.dino_head.last_layer.weight_v.clone()  # type: ignore[union-attr]
    mlp = st.student.dino_head.mlp[0].weight.clone()  # type: ignore[union-attr]
    from plismbench.distillation.corpus import CorpusLoader, open_corpus

    loader = CorpusLoader(open_corpus(he_tiles), global_batch=4, seed=0, workers=0, steps=3)
    for step, tiles in enumerate(loader):
        x = views(st, tiles, [int(p) for p in loader.positions(step)])
        train_step(st, step, x)
        if step == 0:
            assert torch.equal(proto, st.student.dino_head.last_layer.weight_v)  # type: ignore[union-attr]
            assert not torch.equal(mlp, st.student.dino_head.mlp[0].weight)  # type: ignore[union-attr]
    loader.close()
    assert not torch.equal(proto, st.student.dino_head.last_layer.weight_v)  # type: ignore[union-attr]
    after = st.teacher.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(heads_before[k], v) for k, v in st.heads.state_dict().items())
    assert not any(p.requires_grad for p in st.teacher.backbone.parameters())
    assert not st.teacher.backbone.training


def _unregistered_corpus(he_tiles: Path, root: Path) -> Path:
    """The H&E tiles under arbitrary names and folders (no PLISM layout, some JPEG)."""
    from PIL import Image

    files = sorted(he_tiles.rglob("*.png"))
    for i, f in enumerate(files):
        folder = root / ("scans" if i % 2 else "batch 2/x")
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.open(f).convert("RGB")
        if i % 3:
            image.save(folder / f"patch_{i * 7}.png")
        else:
            image.save(folder / f"tile-{i}.JPEG", quality=95)
    return root


def test_tiny_run_of_the_issue_learns(he_tiles: Path, tmp_path: Path) -> None:
    """The issue's tiny run on a folder of unregistered, arbitrarily named tiles: teacher
    vit_small_patch14_reg4_dinov2 (random, random heads), student vit-tiny, 56 px, 1024
    prototypes, 40 steps, batch 16."""
    corpus = _unregistered_corpus(he_tiles, tmp_path / "corpus")
    run = tmp_path / "run"
    distill(TEACHER, output_dir=run, corpus=corpus, student="vit-tiny",
            teacher_heads="random", image_size=56, prototypes=1024, steps=40, batch_size=16,
            device="cpu", progress=False, workers=1)  # fmt: skip
    m = _metrics(run)
    assert len(m) == 40
    for row in m:
        assert all(row[k] is not None and math.isfinite(row[k]) for k in METRIC_KEYS), row
    for key in ("kl_dino", "kl_ibot"):
        first = np.mean([r[key] for r in m[:3]])
        last = np.mean([r[key] for r in m[-3:]])
        assert last <= 0.8 * first, (key, first, last)
    assert (run / "student" / "model.safetensors").is_file()
    assert "warnings" not in (run / "config.yaml").read_text()  # not PLISM, heads chosen


def test_cosine_variant_and_heads_checkpoint(he_tiles: Path, tmp_path: Path) -> None:
    distill(TEACHER, output_dir=tmp_path / "cos", tiles_dir=he_tiles, steps=2, loss="cosine",
            **TINY)  # fmt: skip
    m = _metrics(tmp_path / "cos")
    assert m[-1]["teacher_entropy"] is None and 0 <= m[-1]["loss_dino"] <= 2
    # teacher checkpoint in the DINOv2 layout: backbone.*, dino_head.*, ibot_head.*
    from plismbench.distillation.heads import random_teacher_heads
    from plismbench.distillation.models import build_teacher

    teacher = build_teacher(TEACHER, 28, {"depth": 2})
    heads = random_teacher_heads(teacher.dim, 64, seed=9, hidden=64)
    state = {f"backbone.{k}": v for k, v in teacher.backbone.model.state_dict().items()}  # type: ignore[union-attr]
    state.update(heads.state_dict())
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": state}, path)
    options = {**TINY, "prototypes": None}
    distill(TEACHER, output_dir=tmp_path / "ckpt", tiles_dir=he_tiles, steps=1,
            **{**options, "teacher_heads": str(path)})  # fmt: skip
    assert (tmp_path / "ckpt" / "student" / "config.json").is_file()
    from plismbench.errors import InputError

    with pytest.raises(InputError, match="does not match the teacher heads"):
        distill(TEACHER, output_dir=tmp_path / "bad", tiles_dir=he_tiles, steps=1,
                **{**options, "teacher_heads": str(path), "prototypes": 100})  # fmt: skip


def test_cli_errors_are_one_line(he_tiles: Path, tmp_path: Path) -> None:
    from plismbench.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["distill", "--teacher", TEACHER, "-o", str(tmp_path)])
    assert res.exit_code == 2 and "no tiles: pass --corpus" in res.output
    res = runner.invoke(app, ["distill", "--teacher", TEACHER, "-o", str(tmp_path),
                              "--tiles-dir", str(he_tiles), "--loss", "mse"])  # fmt: skip
    assert res.exit_code == 2 and "--loss must be" in res.output
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    res = runner.invoke(app, ["distill", "--teacher", TEACHER, "-o", str(tmp_path),
                              "--tiles-dir", str(he_tiles)])  # fmt: skip
    assert res.exit_code == 2 and "pass --resume" in res.output
    res = runner.invoke(app, ["distill", "--teacher", "timm:resnet18", "-o", str(tmp_path / "r"),
                              "--tiles-dir", str(he_tiles), "--image-size", "28"])  # fmt: skip
    assert res.exit_code == 2, res.output
