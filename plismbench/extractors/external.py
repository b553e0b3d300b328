"""Specs for models outside the built-in list: ``hf-hub:org/name`` timm ids and local exports.

Both are described from their timm ``config.json``; the model is instantiated on the meta
device to read its width, prefix tokens and parameter count without allocating weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from plismbench.errors import InputError
from plismbench.extractors.archs import TimmArch
from plismbench.extractors.loaders import load_into, load_state_file, timm_loader
from plismbench.extractors.spec import IMAGENET_MEAN, IMAGENET_STD, ExtractorSpec, check_spec


def timm_spec(
    name: str,
    arch: str,
    model_args: dict[str, Any],
    pretrained_cfg: dict[str, Any],
    extra_cfg: dict[str, Any],
    loader: Callable[..., torch.nn.Module],
    **fields: Any,
) -> ExtractorSpec:
    """Describe a timm model from its config, instantiating it on the meta device."""
    import timm

    layers = {k: str(extra_cfg[k]) for k in ("mlp_layer", "act_layer") if k in extra_cfg}
    declared = TimmArch(
        arch,
        img_size=None,
        config_kwargs=tuple(model_args.items()),
        card=tuple(layers),
        **layers,  # type: ignore[arg-type]
    )
    try:
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False, **declared.kwargs())
    except Exception as exc:
        raise InputError(
            f"model {name!r}: cannot build timm architecture {arch!r}: {exc}"
        ) from None
    prefix = int(getattr(model, "num_prefix_tokens", 0))
    has_cls = getattr(model, "cls_token", None) is not None
    pooling: Any = extra_cfg.get("pooling") or ("cls" if has_cls else "model")
    width = int(getattr(model, "num_features", 0))
    embed_dim = int(extra_cfg.get("embed_dim") or (2 * width if pooling == "cls+mean" else width))
    input_size = pretrained_cfg.get("input_size") or [3, 224, 224]
    spec = ExtractorSpec(
        name=name,
        loader=loader,
        embed_dim=embed_dim,
        pooling=pooling,
        num_prefix_tokens=int(extra_cfg.get("num_prefix_tokens", prefix)),
        input_size=int(input_size[-1]),
        mean=tuple(pretrained_cfg.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(pretrained_cfg.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        dtype=extra_cfg.get("dtype", "bf16"),
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        timm=declared,
        **fields,
    )
    check_spec(spec)
    return spec


def hub_spec(hub_id: str, error: Callable[[BaseException], InputError]) -> ExtractorSpec:
    """A timm model on the Hub, described from its ``config.json``."""
    from timm.models import load_model_config_from_hf

    try:
        pretrained_cfg, arch, model_args = load_model_config_from_hf(hub_id)
    except Exception as exc:
        raise error(exc) from None
    return timm_spec(
        f"hf-hub:{hub_id}",
        arch,
        dict(model_args or {}),
        dict(pretrained_cfg or {}),
        dict((pretrained_cfg or {}).get("plismbench", {})),
        timm_loader,
        hub_id=hub_id,
    )


def _local_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    backbone = timm_loader(spec, pretrained=False, **overrides)
    if pretrained and spec.local_dir is not None:
        directory = Path(spec.local_dir)
        weights = directory / "model.safetensors"
        if not weights.is_file():
            weights = directory / "pytorch_model.bin"
        load_into(spec, backbone, load_state_file(weights), str(weights))
    return backbone


def local_spec(path: Path) -> ExtractorSpec:
    """A folder exported by ``plismbench distill`` (timm ``config.json`` + weights)."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InputError(f"model directory {path} has no config.json (timm export expected)")
    if not (path / "model.safetensors").is_file() and not (path / "pytorch_model.bin").is_file():
        raise InputError(f"model directory {path} has no model.safetensors")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}") from None
    arch = config.get("architecture")
    if not arch:
        raise InputError(f"{config_path} has no 'architecture' (timm config expected)")
    model_args = dict(config.get("model_args", {}))
    if "num_classes" in config:
        model_args.setdefault("num_classes", config["num_classes"])
    pretrained_cfg = dict(config.get("pretrained_cfg", {}))
    for key in ("mean", "std", "input_size"):
        if key in config:
            pretrained_cfg.setdefault(key, config[key])
    extra_cfg = dict(config.get("plismbench", {}))
    spec = timm_spec(
        extra_cfg.get("name") or path.name,
        arch,
        model_args,
        pretrained_cfg,
        extra_cfg,
        _local_loader,
        description=f"local export {path}",
    )
    return replace(spec, local_dir=str(path.resolve()))
