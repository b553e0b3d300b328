"""Schedules and AdamW parameter groups."""

from __future__ import annotations

import math

import pytest

from plismbench.distillation.models import StudentNet, build_student
from plismbench.distillation.optim import param_groups
from plismbench.distillation.schedules import Schedules, scaled_lr


def test_schedules_endpoints() -> None:
    s = Schedules(steps=100, peak_lr=1.0, warmup_steps=10, min_lr=0.0, teacher_temp_warmup=30,
                  freeze_last_layer_steps=2)  # fmt: skip
    assert s.lr(0) == pytest.approx(0.1) and s.lr(9) == pytest.approx(1.0)
    assert s.lr(10) == pytest.approx(1.0) and s.lr(55) == pytest.approx(0.5)
    assert s.lr(99) < 0.001
    assert s.weight_decay(0) == pytest.approx(0.04) and s.weight_decay(100) == pytest.approx(0.4)
    assert s.weight_decay(50) == pytest.approx(0.22)
    assert s.teacher_temp(0) == pytest.approx(0.04) and s.teacher_temp(15) == pytest.approx(0.055)
    assert s.teacher_temp(30) == s.teacher_temp(99) == pytest.approx(0.07)
    assert s.ema_momentum(0) == pytest.approx(0.994) and s.ema_momentum(100) == 1.0
    assert s.last_layer_frozen(1) and not s.last_layer_frozen(2)
    assert scaled_lr(4e-3, 2048) == pytest.approx(4e-3 * math.sqrt(2))


def test_param_groups_decay_rules() -> None:
    built = build_student("vit-tiny", 28, {"depth": 3})
    net = StudentNet(built.module, built.num_prefix_tokens, built.dim, "dino-ibot",
                     prototypes=(16, 16), hidden=32)  # fmt: skip
    groups = param_groups(net, built.depth, 0.5)
    where = {}
    for g in groups:
        for p in g["params"]:
            where[id(p)] = g
    names = dict(net.named_parameters())

    def group(name: str) -> dict:
        return where[id(names[name])]

    assert group("backbone.blocks.0.attn.qkv.weight")["lr_scale"] == pytest.approx(0.5**3)
    assert group("backbone.blocks.2.mlp.fc1.weight")["lr_scale"] == pytest.approx(0.5)
    assert group("backbone.patch_embed.proj.weight")["lr_scale"] == pytest.approx(0.5**4)
    assert group("dino_head.mlp.0.weight")["lr_scale"] == 1.0
    for name in ("backbone.blocks.0.attn.qkv.bias", "backbone.blocks.0.norm1.weight",
                 "backbone.blocks.0.ls1.gamma", "backbone.cls_token", "backbone.reg_token",
                 "backbone.pos_embed", "dino_head.mlp.0.bias"):  # fmt: skip
        assert group(name)["wd_scale"] == 0.0, name
    assert group("backbone.blocks.0.attn.qkv.weight")["wd_scale"] == 1.0
    assert group("ibot_head.last_layer.weight_v")["last_layer"]
    assert "dino_head.last_layer.weight_g" not in {n for n, p in names.items() if id(p) in where}
