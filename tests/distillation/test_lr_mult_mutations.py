"""DINOv2's patch-embedding lr multiplier 0.2 is the default and reaches the param groups
(mutation-checked: a default of 1.0 survived, since only the preset was tested)."""

from __future__ import annotations

import pytest

from plismbench.distillation.config import config_from
from plismbench.distillation.models import StudentNet, build_student
from plismbench.distillation.optim import param_groups


def test_patch_embed_lr_mult_defaults_to_dinov2s_without_a_preset() -> None:
    cfg = config_from(teacher="timm:vit_small_patch14_reg4_dinov2", output_dir="unused")
    assert cfg.patch_embed_lr_mult == 0.2


def test_patch_embed_lr_mult_scales_only_the_patch_embedding() -> None:
    built = build_student("vit-tiny", 28, {"depth": 2})
    net = StudentNet(built.module, built.num_prefix_tokens, built.dim, "dino-ibot",
                     prototypes=(8, 8), hidden=16)  # fmt: skip
    where = {id(p): g for g in param_groups(net, built.depth, 0.5, 0.2) for p in g["params"]}
    names = dict(net.named_parameters())
    assert where[id(names["backbone.patch_embed.proj.weight"])]["lr_scale"] == pytest.approx(
        0.5**3 * 0.2
    )
    assert where[id(names["backbone.blocks.0.attn.qkv.weight"])]["lr_scale"] == pytest.approx(
        0.5**2
    )


def test_build_passes_the_configured_multiplier_to_the_optimiser() -> None:
    import torch

    from plismbench.distillation.build import build

    cfg = config_from(teacher="timm:vit_small_patch14_reg4_dinov2", output_dir="unused",
                      teacher_heads="random", student="vit-tiny", image_size=28, prototypes=8,
                      batch_size=2, device="cpu", progress=False, layer_decay=1.0,
                      patch_embed_lr_mult=0.3, teacher_overrides={"depth": 1},
                      student_overrides={"depth": 1})  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    weight = dict(st.student.named_parameters())["backbone.patch_embed.proj.weight"]
    (group,) = [g for g in st.optimiser.param_groups if any(p is weight for p in g["params"])]
    assert group["lr_scale"] == pytest.approx(0.3)
