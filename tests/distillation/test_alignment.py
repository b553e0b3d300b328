"""Mutation guards: the EMA arithmetic on known numbers, and teacher/student patch tokens
paired at the same (image, position) in the iBOT loss (brute-force oracle)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from plismbench.distillation.build import build
from plismbench.distillation.config import config_from
from plismbench.distillation.step import losses, train_step, update_momentum

TEACHER = "timm:vit_small_patch14_reg4_dinov2"
TINY = {"teacher_heads": "random", "student": "vit-tiny", "image_size": 42, "prototypes": 40,
        "batch_size": 2, "device": "cpu", "progress": False, "centring": "centre",
        "teacher_overrides": {"depth": 1}, "student_overrides": {"depth": 1}}  # fmt: skip


def test_update_momentum_on_known_numbers() -> None:
    ema, model = nn.Linear(2, 1, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        ema.weight.copy_(torch.tensor([[1.0, 10.0]]))
        model.weight.copy_(torch.tensor([[0.0, 20.0]]))
    update_momentum(ema, model, 0.9)
    # 0.9 * ema + 0.1 * model
    torch.testing.assert_close(ema.weight, torch.tensor([[0.9, 11.0]]))
    assert model.weight.tolist() == [[0.0, 20.0]]


def test_train_step_moves_the_ema_by_the_scheduled_momentum() -> None:
    cfg = config_from(teacher=TEACHER, output_dir=Path("unused"), steps=4,
                      ema_momentum=(0.75, 0.75), **TINY)  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in st.ema.parameters()]
    train_step(st, 0, torch.rand(4, 3, 42, 42, generator=torch.Generator().manual_seed(0)))
    for e, e0, s in zip(st.ema.parameters(), before, st.student.parameters(), strict=True):
        torch.testing.assert_close(e, 0.75 * e0 + 0.25 * s.detach())
    assert any(not torch.equal(e, e0) for e, e0 in zip(st.ema.parameters(), before, strict=True))


def test_ibot_pairs_teacher_and_student_tokens_of_the_same_image_and_position() -> None:
    cfg = config_from(teacher=TEACHER, output_dir=Path("unused"), steps=4, **TINY)
    st = build(cfg, torch.device("cpu"))
    assert st.heads is not None and st.student.ibot_head is not None
    # a crafted input: every image different, every position different
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 42, 42, generator=g)
    x[:, 0] += torch.arange(4).view(4, 1, 1) * 0.2
    x = x.clamp(0, 1)
    with torch.no_grad():
        got = losses(st, 0, x)
        tau_t, tau_s = st.sched.teacher_temp(0), cfg.student_temp
        teacher = st.teacher.backbone(st.teacher_norm(x))
        student = st.student.backbone.forward_features(st.student_norm(x))  # type: ignore[operator]
        tw = st.heads.ibot_head.prototypes().double()
        sw = st.student.ibot_head.prototypes().double()
        pt, ps = st.teacher.num_prefix_tokens, st.built.num_prefix_tokens
        n_img, n_patch = x.shape[0], teacher.shape[1] - pt
        total = 0.0
        for i in range(n_img):
            for p in range(n_patch):
                tz = st.heads.ibot_head.embed(teacher[i, pt + p].float()).double()
                sz = st.student.ibot_head.embed(student[i, ps + p]).double()
                q = torch.softmax(tz @ tw.T / tau_t, dim=-1)  # centre 0 at step 0
                total += float(-(q * torch.log_softmax(sz @ sw.T / tau_s, dim=-1)).sum())
    brute = total / (n_img * n_patch)
    assert math.isclose(float(got["loss_ibot"]), brute, rel_tol=1e-4), (got["loss_ibot"], brute)
