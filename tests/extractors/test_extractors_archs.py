"""Every built-in architecture with random weights: pooling and dimension."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from plismbench.errors import InputError
from plismbench.extractors.builtins import BUILTINS
from plismbench.extractors.loaders import TimmBackbone, timm_loader, url_loader
from plismbench.extractors.module import pool_tokens
from plismbench.extractors.registry import list_extractors, load_extractor

TIMM_SPECS = [s for s in BUILTINS if s.loader in (timm_loader, url_loader)]
OTHER_SPECS = [s for s in BUILTINS if s.loader not in (timm_loader, url_loader)]
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None

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


@pytest.mark.parametrize("spec", OTHER_SPECS, ids=lambda s: s.name)
def test_other_architectures(spec) -> None:
    has_random_build = "hf_config" in spec.extra
    missing = [m for m, _ in spec.requires if importlib.util.find_spec(m) is None]
    if missing:
        with pytest.raises(InputError, match=f"needs the optional package '{missing[0]}'"):
            load_extractor(spec, pretrained=False, depth=1)
        return
    if not has_random_build:
        pytest.skip(f"{spec.name} uses Hub code; no offline random build")
    model = load_extractor(spec, pretrained=False, depth=1)
    out = model(torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8))
    assert out.shape == (2, spec.embed_dim)


def test_prov_gigapath_resizes_then_crops() -> None:
    model = load_extractor("prov-gigapath", pretrained=False, depth=1)
    x = model.preprocess(torch.full((1, 224, 224, 3), 128, dtype=torch.uint8))
    assert x.shape == (1, 3, 224, 224)


def test_baselines_are_hellinger_histograms() -> None:
    tiles = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8)
    for name in ("rgb-histogram", "hed-histogram"):
        model = load_extractor(name)
        out = model(tiles)
        assert out.shape == (3, 96)
        torch.testing.assert_close((out**2).sum(1), torch.full((3,), 3.0))
        # Channel-first input gives the same features.
        torch.testing.assert_close(model(tiles.permute(0, 3, 1, 2)), out)
