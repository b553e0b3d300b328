"""What a real run needs: gradient accumulation, fp16 with GradScaler, the teacher in half
precision, activation checkpointing, --compile, logging sinks, warnings, learnt heads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from plismbench.distillation.build import build, heads_warning
from plismbench.distillation.config import config_from
from plismbench.distillation.runlog import progress_text
from plismbench.distillation.step import train_step
from plismbench.errors import InputError

TEACHER = "timm:vit_small_patch14_reg4_dinov2"
TINY = {"student": "vit-tiny", "image_size": 28, "prototypes": 32, "batch_size": 4,
        "device": "cpu", "progress": False, "workers": 0,
        "teacher_overrides": {"depth": 1}, "student_overrides": {"depth": 1}}  # fmt: skip


def _x(seed: int = 0) -> torch.Tensor:
    return torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_gradient_accumulation_matches_one_batch() -> None:
    params = []
    for accum in (1, 2):
        cfg = config_from(teacher=TEACHER, output_dir="unused", loss="cosine", grad_accum=accum,
                          **TINY)  # fmt: skip
        st = build(cfg, torch.device("cpu"))
        record = train_step(st, 0, _x())
        params.append(([p.detach().clone() for p in st.student.parameters()], record["loss"]))
    for a, b in zip(params[0][0], params[1][0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert abs(params[0][1] - params[1][1]) < 1e-5
    cfg = config_from(teacher=TEACHER, output_dir="unused", grad_accum=3, **TINY)
    with pytest.raises(InputError, match="--grad-accum 3"):
        train_step(build(cfg, torch.device("cpu")), 0, _x())


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_teacher_and_scaler(precision: str) -> None:
    cfg = config_from(teacher=TEACHER, output_dir="unused", precision=precision,
                      teacher_heads="random", **TINY)  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    want = torch.float16 if precision == "fp16" else torch.bfloat16
    assert st.teacher_dtype == want
    assert (st.scaler is not None) == (precision == "fp16")
    assert all(p.dtype == torch.float32 for p in st.student.parameters())
    record = train_step(st, 0, _x())
    assert record["loss"] == record["loss"]  # finite or at least not NaN


def test_grad_checkpointing_and_compile_are_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = []

    def fake_compile(model: torch.nn.Module, **kwargs: object) -> torch.nn.Module:
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = config_from(teacher=TEACHER, output_dir="unused", grad_checkpointing=True,
                      compile=True, loss="cosine", **TINY)  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    assert compiled == [st.student]
    assert st.student.backbone.grad_checkpointing  # type: ignore[union-attr]
    assert train_step(st, 0, _x())["loss"] > 0


def test_missing_logging_packages_are_one_line() -> None:
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(InputError, match="pip install wandb"):
            config_from(teacher=TEACHER, output_dir="o", wandb="project").check()
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(InputError, match="pip install tensorboard"):
            config_from(teacher=TEACHER, output_dir="o", tensorboard=True).check()


def test_progress_line_and_heads_warning() -> None:
    record = {"img_per_s": 12.34, "loss": 9.1, "loss_dino": 4.5, "loss_ibot": 4.6, "lr": 1e-4}
    text = progress_text(record, 3725)
    assert "12.3 img/s" in text and "loss 9.100" in text and "lr 1.00e-04" in text
    assert text.endswith("eta 1h02m") and progress_text(record, 75).endswith("eta 1m15s")
    assert "RANDOM" in (heads_warning(config_from(teacher="h-optimus-0")) or "")
    assert heads_warning(config_from(teacher="h-optimus-0", teacher_heads="random")) is None
    assert heads_warning(config_from(teacher="h-optimus-0", loss="cosine")) is None
    assert heads_warning(config_from(teacher=TEACHER)) is None  # random weights anyway


def test_learn_heads_then_distil(he_tiles: Path, tmp_path: Path) -> None:
    from plismbench.distillation import distill
    from plismbench.distillation.heads import random_teacher_heads

    run = tmp_path / "run"
    options = {**TINY, "batch_size": 2}
    corpus = he_tiles / "GIV_AT2_to_GMH_S60.tif"
    distill(TEACHER, output_dir=run, corpus=corpus, teacher_heads="learn", learn_heads_steps=2,
            steps=1, **options)  # fmt: skip
    learnt = torch.load(run / "teacher_heads.pt", weights_only=True)["heads"]
    assert learnt["dino_head.last_layer.weight_v"].shape[0] == 32
    random = random_teacher_heads(384, 32, seed=1).state_dict()
    assert not torch.equal(learnt["dino_head.mlp.0.weight"], random["dino_head.mlp.0.weight"])
    assert (run / "student" / "model.safetensors").is_file()


def test_cli_run_on_a_corpus_with_a_yaml_config(he_tiles: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from plismbench.cli import app

    path = tmp_path / "tiny.yaml"
    path.write_text("teacher: timm:vit_small_patch14_reg4_dinov2\nteacher_heads: random\n"
                    "student: vit-tiny\nimage_size: 28\nprototypes: 32\nworkers: 0\n"
                    "teacher_overrides: {depth: 1}\nstudent_overrides: {depth: 1}\n")  # fmt: skip
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["distill", "--config", str(path), "-o", str(run), "--corpus",
                                   str(he_tiles / "GIV_AT2_to_GMH_S60.tif"), "--steps", "1",
                                   "-b", "2", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (run / "student" / "model.safetensors").is_file()
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["teacher_overrides"] == {"depth": 1} and saved["steps"] == 1
