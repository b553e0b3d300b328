"""AdamW parameter groups: layer-wise lr decay, no decay on biases/norms/layer scale."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

__all__ = ["apply_schedules", "param_groups"]

_NO_DECAY = ("pos_embed", "cls_token", "reg_token", "register_tokens", "mask_token")


def _layer_id(name: str, depth: int) -> int:
    """0 for embeddings, ``i + 1`` for block ``i``, ``depth + 1`` for the rest."""
    if name.startswith("backbone."):
        inner = name[len("backbone.") :]
        if inner.startswith(("patch_embed", *_NO_DECAY)):
            return 0
        found = re.match(r"blocks\.(\d+)\.", inner)
        if found:
            return int(found.group(1)) + 1
    return depth + 1


def _no_decay(name: str, param: nn.Parameter) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return (
        param.ndim <= 1
        or name.endswith(".bias")
        or "norm" in name
        or leaf in ("gamma", "weight_g")
        or any(token in name for token in _NO_DECAY)
    )


def param_groups(
    model: nn.Module, depth: int, layer_decay: float, patch_embed_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """One group per (lr scale, wd on/off, last layer) combination.

    The patch embedding's lr is further scaled by ``patch_embed_lr_mult`` (DINOv2: 0.2).
    """
    groups: dict[tuple[float, float, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = layer_decay ** (depth + 1 - _layer_id(name, depth))
        if name.startswith("backbone.patch_embed."):
            scale *= patch_embed_lr_mult
        wd = 0.0 if _no_decay(name, param) else 1.0
        last = ".last_layer." in name or name.startswith("last_layer.")
        key = (scale, wd, last)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr_scale": scale,
                "wd_scale": wd,
                "last_layer": last,
            }
        groups[key]["params"].append(param)
    return list(groups.values())


def apply_schedules(optimiser: torch.optim.Optimizer, lr: float, wd: float) -> None:
    """Set each group's lr and weight decay from the step's values and its scales."""
    for group in optimiser.param_groups:
        group["lr"] = lr * group["lr_scale"]
        group["weight_decay"] = wd * group["wd_scale"]
