"""Intermediate-layer features (``extract --layers``) from timm ViTs' ``forward_intermediates``.

Layer ``L`` (1-based) is the output of transformer block ``L``, passed through the
model's final norm and pooled exactly like the final features (the spec's ``cls``,
``mean`` or ``cls+mean``, register tokens excluded); layer ``n_layers`` therefore
equals the final features. One forward pass gives the final and every asked layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from plismbench.errors import InputError
from plismbench.extractors.module import FeatureExtractor, pool_tokens, torch_dtype


def _timm_vit(extractor: FeatureExtractor) -> torch.nn.Module | None:
    """The timm model under a token-returning backbone, when it has blocks to hook."""
    backbone = getattr(extractor.backbone, "_orig_mod", extractor.backbone)
    model = getattr(backbone, "model", None)
    if (
        getattr(backbone, "tokens", False)
        and model is not None
        and hasattr(model, "forward_intermediates")
        and isinstance(getattr(model, "blocks", None), torch.nn.Sequential | torch.nn.ModuleList)
        and extractor.spec.pooling != "model"
    ):
        return model
    return None


def n_layers(extractor: FeatureExtractor) -> int | None:
    """Number of transformer blocks whose output ``--layers`` can store (``None``: none)."""
    model = _timm_vit(extractor)
    return None if model is None else len(model.blocks)  # type: ignore[arg-type]


def parse_layers(value: str | Sequence[int] | None, extractor: FeatureExtractor) -> list[int]:
    """``"all"``, ``"4,8,12"`` or ints to a sorted list of valid 1-based layers."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    n = n_layers(extractor)
    if n is None:
        raise InputError(
            f"model {extractor.name!r} has no transformer layers to store; --layers needs a "
            "timm ViT whose features are pooled tokens (cls, mean or cls+mean)"
        )
    if isinstance(value, str) and value.strip().lower() == "all":
        return list(range(1, n + 1))
    try:
        items = [int(v) for v in value.split(",") if v.strip()] if isinstance(value, str) else [
            int(v) for v in value
        ]
    except ValueError:
        raise InputError(f"--layers {value!r}: give 'all' or comma-separated integers") from None
    bad = [v for v in items if not 1 <= v <= n]
    if bad or not items:
        raise InputError(
            f"--layers {value!r}: model {extractor.name!r} has layers 1 to {n} (got {bad or value})"
        )
    return sorted(set(items))


def forward_with_layers(
    extractor: FeatureExtractor, tiles: torch.Tensor, layers: list[int]
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Final features and each layer's pooled features, float32, from one forward pass."""
    model = _timm_vit(extractor)
    if model is None:
        raise InputError(f"model {extractor.name!r} has no transformer layers to store")
    spec = extractor.spec
    x = extractor.preprocess(tiles)
    autocast: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if extractor.precision != "fp32":
        autocast = torch.autocast(x.device.type, dtype=torch_dtype(extractor.precision))
    with autocast:
        final, inter = model.forward_intermediates(  # type: ignore[operator]
            x, indices=[v - 1 for v in layers], norm=True, output_fmt="NLC",
            return_prefix_tokens=True,
        )  # fmt: skip
    out = {}
    for layer, (patches, prefix) in zip(layers, inter, strict=True):
        tokens = torch.cat([prefix, patches], dim=1)
        out[layer] = pool_tokens(tokens, spec.pooling, spec.num_prefix_tokens).float()
    return pool_tokens(final, spec.pooling, spec.num_prefix_tokens).float(), out
