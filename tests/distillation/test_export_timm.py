"""The exported student loads in plain timm exactly as bioptimus/H0-mini does, and the
``vit-base`` student has H0-mini's size (about 86M parameters, SwiGLU hidden 2048)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from plismbench.distillation.export import export_student, student_config
from plismbench.distillation.models import build_student


def test_vit_base_student_has_h0_mini_size() -> None:
    with torch.device("meta"):
        built = build_student("vit-base", 224)
    model = built.module
    params = sum(p.numel() for p in model.parameters())
    assert 85.5e6 < params < 86.5e6, params
    mlp = model.blocks[0].mlp  # type: ignore[index]
    assert (mlp.fc1.out_features, mlp.fc2.in_features) == (4096, 2048)  # packed gate + value
    assert (built.dim, built.depth, built.num_prefix_tokens) == (768, 12, 5)


def test_export_loads_with_the_h0_mini_snippet(tmp_path: Path) -> None:
    import timm

    built = build_student("vit-tiny", 56, {"depth": 2})
    config = student_config(built.arch, built.model_args, name="s", num_features=built.dim,
                            num_prefix_tokens=built.num_prefix_tokens, image_size=56,
                            mean=(0.7, 0.6, 0.7), std=(0.2, 0.2, 0.2))  # fmt: skip
    out = export_student(built.module, tmp_path / "student", config)
    saved = json.loads((out / "config.json").read_text())
    assert "mlp_layer" not in saved["model_args"] and saved["plismbench"]["mlp_layer"]
    # the documented snippet (docs/distill.md), as on the bioptimus/H0-mini model card
    model = timm.create_model(
        f"local-dir:{out}",
        pretrained=True,
        mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=torch.nn.SiLU,
    )
    model.eval()
    built.module.eval()
    x = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        want = built.module.forward_features(x)  # type: ignore[operator]
        got = model.forward_features(x)
    torch.testing.assert_close(got, want)
    assert model.num_prefix_tokens == 5 and tuple(model.pretrained_cfg["mean"]) == (0.7, 0.6, 0.7)
    # and plismbench reads the same folder
    from plismbench.extractors.registry import load_extractor

    feats = load_extractor(str(out))(torch.rand(1, 3, 56, 56))
    assert feats.shape == (1, 192)
