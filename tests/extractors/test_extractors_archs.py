"""Every built-in architecture with random weights: pooling and dimension."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch

from plismbench.errors import InputError
from plismbench.extractors.builtins import BUILTINS
from plismbench.extractors.loaders import TimmBackbone, timm_loader, url_loader
from plismbench.extractors.loaders_hf import HFBackbone, transformers_loader
from plismbench.extractors.module import pool_tokens
from plismbench.extractors.registry import get_extractor, list_extractors, load_extractor
from plismbench.extractors.spec import (
    HALF_MEAN,
    HALF_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

TIMM_SPECS = [s for s in BUILTINS if s.loader in (timm_loader, url_loader)]
OTHER_SPECS = [s for s in BUILTINS if s.loader not in (timm_loader, url_loader)]
HF_SPECS = [s for s in BUILTINS if s.loader is transformers_loader]
HUB_CODE_SPECS = [s for s in HF_SPECS if s.hf is not None and s.hf.trust_remote_code]

#: Normalisation of the transformers-based models, from their cards / the reference benchmark.
_HIBOU = ((0.7068, 0.5755, 0.722), (0.195, 0.2316, 0.1816))
HF_NORM = {
    "phikon": (IMAGENET_MEAN, IMAGENET_STD),
    "phikon-v2": (IMAGENET_MEAN, IMAGENET_STD),
    "midnight-12k": (HALF_MEAN, HALF_STD),
    "plip": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "hibou-b": _HIBOU,
    "hibou-l": _HIBOU,
    "conch-v1.5": (IMAGENET_MEAN, IMAGENET_STD),
}

REFERENCE_DIMS = {
    "h0-mini": 768, "h-optimus-0": 1536, "h-optimus-1": 1536, "uni": 1024, "uni2-h": 1536,
    "virchow": 2560, "virchow2": 2560, "prov-gigapath": 1536, "phikon": 768, "phikon-v2": 1024,
    "conch": 512, "plip": 512, "gpfm": 1024, "hibou-b": 768, "hibou-l": 1024,
    "kaiko-vit-b8": 768, "kaiko-vit-l14": 1024, "midnight-12k": 3072, "lunit-vit-s8": 384,
    "dinov2-vit-g14": 1536, "h0-mini-cls-mean": 1536, "conch-v1.5": 768,
}  # fmt: skip


def test_every_leaderboard_model_is_registered() -> None:
    names = {s.name for s in list_extractors()}
    assert set(REFERENCE_DIMS) <= names
    assert {"hed-histogram", "rgb-histogram"} <= names
    for spec in BUILTINS:
        assert spec.embed_dim == REFERENCE_DIMS[spec.name], spec.name


@pytest.mark.parametrize("spec", TIMM_SPECS, ids=lambda s: s.name)
def test_timm_architecture_pooling_and_dim(spec) -> None:
    torch.manual_seed(0)
    model = load_extractor(spec, pretrained=False, depth=1)  # self-check runs inside
    backbone = model.backbone
    assert isinstance(backbone, TimmBackbone)
    inner = backbone.model
    assert inner.num_prefix_tokens == spec.num_prefix_tokens, "register tokens miscounted"
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        out = model(tiles)
        x = model.preprocess(tiles)
        tokens = inner.forward_features(x)
    assert out.shape == (2, spec.embed_dim) and out.dtype == torch.float32
    expected = pool_tokens(tokens, spec.pooling, spec.num_prefix_tokens)
    torch.testing.assert_close(out, expected)
    if spec.pooling == "cls" and inner.global_pool == "token":
        # The model's own pooled output agrees with the declared CLS pooling.
        with torch.inference_mode():
            torch.testing.assert_close(inner.forward_head(tokens), out)


def _absent(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def _present(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Satisfy ``require`` for packages a test does not otherwise need (e.g. einops)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            monkeypatch.setitem(sys.modules, module, types.ModuleType(module))


@pytest.mark.parametrize(
    ("spec", "module"),
    [(s, m) for s in OTHER_SPECS for m, _ in s.requires],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_missing_optional_package_is_one_clear_line(spec, module, monkeypatch) -> None:
    _absent(monkeypatch, module)
    absent = {m for m, _ in spec.requires if m == module or importlib.util.find_spec(m) is None}
    first, hint = next((m, h) for m, h in spec.requires if m in absent)
    with pytest.raises(InputError, match=f"needs the optional package '{first}'") as info:
        load_extractor(spec, pretrained=False, depth=1)
    assert hint in str(info.value)


@pytest.mark.parametrize("spec", HUB_CODE_SPECS, ids=lambda s: s.name)
def test_hub_code_models_say_they_have_no_random_build(spec, monkeypatch) -> None:
    pytest.importorskip("transformers")
    _present(monkeypatch, *(m for m, _ in spec.requires))
    with pytest.raises(InputError, match="uses Hub code and has no random build"):
        load_extractor(spec, pretrained=False, depth=1)


def _hf_param(spec):
    if spec in HUB_CODE_SPECS:
        reason = (
            f"{spec.name} is defined by Hub remote code (trust_remote_code, {spec.hub_id}); "
            "it cannot be built offline with random weights"
        )
        return pytest.param(spec, id=spec.name, marks=pytest.mark.skip(reason=reason))
    return pytest.param(spec, id=spec.name)


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spec", [_hf_param(s) for s in HF_SPECS])
def test_transformers_architecture_pooling_and_dim(spec) -> None:
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = load_extractor(spec, pretrained=False, depth=1)  # self-check runs inside
    backbone = model.backbone
    assert isinstance(backbone, HFBackbone)
    inner = backbone.model
    config = inner.config
    assert config.num_hidden_layers == 1
    assert type(inner).__name__ == (spec.hf.random_class or spec.hf.model_class)

    # Normalisation is the declared one, and the declared one is the model card's.
    assert (spec.mean, spec.std) == HF_NORM[spec.name]
    torch.testing.assert_close(model.mean255.flatten() / 255, torch.tensor(spec.mean))
    torch.testing.assert_close(1 / (model.inv_std255.flatten() * 255), torch.tensor(spec.std))

    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        out = model(tiles)
        x = model.preprocess(tiles)
        hf_out = inner(pixel_values=x)
    assert x.shape == (2, 3, spec.input_size, spec.input_size)
    torch.testing.assert_close(
        x[:, :, :1, :1].flatten(1),
        (
            (tiles[:, :1, :1].float() / 255 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
        ).flatten(1),
    )
    assert out.shape == (2, spec.embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()

    tokens = hf_out.last_hidden_state
    num_patches = (spec.input_size // config.patch_size) ** 2
    assert tokens.shape[1] - num_patches == spec.num_prefix_tokens, "prefix tokens miscounted"
    if spec.pooling == "cls":
        expected = tokens[:, 0]
    elif spec.pooling == "cls+mean":
        patches = tokens[:, spec.num_prefix_tokens :]
        expected = torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1)
    else:
        # CLIP image features: final-norm CLS through the visual projection.
        assert spec.hf.output == "image_features"
        with torch.inference_mode():
            pooled = inner.vision_model.post_layernorm(tokens[:, 0])
            expected = inner.visual_projection(pooled)
        assert config.projection_dim == spec.embed_dim
    torch.testing.assert_close(out, expected)
    if spec.pooling in ("cls", "cls+mean"):
        assert tokens.shape[-1] * (2 if spec.pooling == "cls+mean" else 1) == spec.embed_dim
    if spec.pooling == "cls" and type(inner).__name__ == "Dinov2Model":
        # Dinov2's own pooled output is the (already normed) CLS token.
        torch.testing.assert_close(hf_out.pooler_output, out)

    # The full-depth config matches the card's parameter count (per-layer size from depth 2).
    deeper = spec.loader(spec, pretrained=False, depth=2)
    per_layer = _num_params(deeper) - _num_params(backbone)
    full_layers = spec.hf.num_hidden_layers
    full_m = (_num_params(backbone) + per_layer * (full_layers - 1)) / 1e6
    assert full_m == pytest.approx(spec.params_m, rel=0.05), f"{full_m:.0f}M parameters"


def test_plip_pretrained_path_matches_random_build() -> None:
    """``CLIPModel.get_image_features`` (pretrained path) gives the random build's output."""
    transformers = pytest.importorskip("transformers")
    spec = get_extractor("plip")
    torch.manual_seed(0)
    random_build = load_extractor(spec, pretrained=False, depth=1)
    vision_kwargs = {**spec.hf.config_kwargs(), "num_hidden_layers": 1}
    projection_dim = vision_kwargs.pop("projection_dim")
    config = transformers.CLIPConfig(
        vision_config=vision_kwargs,
        text_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "vocab_size": 99,
        },
        projection_dim=projection_dim,
    )
    clip = getattr(transformers, spec.hf.model_class)(config)
    missing, _ = clip.load_state_dict(random_build.backbone.model.state_dict(), strict=False)
    assert not [k for k in missing if k.startswith(("vision_model.", "visual_projection."))]
    pretrained_path = HFBackbone(clip.eval(), spec.hf.output)
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        torch.testing.assert_close(pretrained_path(x), random_build.backbone(x))


def test_baselines_are_hellinger_histograms() -> None:
    tiles = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8)
    for name in ("rgb-histogram", "hed-histogram"):
        model = load_extractor(name)
        out = model(tiles)
        assert out.shape == (3, 96)
        torch.testing.assert_close((out**2).sum(1), torch.full((3,), 3.0))
        # Channel-first input gives the same features.
        torch.testing.assert_close(model(tiles.permute(0, 3, 1, 2)), out)
