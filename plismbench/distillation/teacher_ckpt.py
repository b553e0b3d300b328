"""Teacher checkpoints: DINOv2/DINOv3 heads and, when present, the backbone's weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from plismbench.distillation.heads import TeacherHeads, heads_from_state, teacher_state
from plismbench.distillation.models import Teacher
from plismbench.errors import InputError

__all__ = ["backbone_state", "load_teacher_checkpoint"]


def load_teacher_checkpoint(path: Path, teacher: Teacher) -> TeacherHeads:
    """Heads (and, when present, backbone weights) from a DINOv2/DINOv3 checkpoint.

    Either a teacher checkpoint (``backbone.*``, ``dino_head.*``, ``ibot_head.*``) or a
    full training checkpoint (``teacher.*`` next to ``student.*``: the teacher's tensors
    are used). Without ``ibot_head.*`` the iBOT head is the DINO head (a shared head).
    """
    from plismbench.extractors.loaders import load_state_file

    try:
        state = teacher_state(load_state_file(path))
    except KeyError as exc:
        raise InputError(f"{path}: {exc.args[0]}") from None
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.")}
    if backbone:
        inner = getattr(teacher.backbone, "model", teacher.backbone)
        try:
            converted = backbone_state(backbone, inner)
            missing, unexpected = inner.load_state_dict(converted, strict=False)
        except (RuntimeError, ValueError) as exc:  # shape mismatches
            first = str(exc).strip().splitlines()[-1].strip()
            raise InputError(
                f"{path}: backbone.* does not fit teacher {teacher.name!r} ({first})"
            ) from None
        if missing or unexpected:
            raise InputError(
                f"{path}: backbone.* does not fit teacher {teacher.name!r} "
                f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, "
                f"e.g. {unexpected[:2]})"
            )
    try:
        return heads_from_state(state, teacher.dim)
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: no usable teacher heads: {exc.args[0]}") from None


def backbone_state(backbone: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``backbone.*`` of a DINOv2/DINOv3 teacher checkpoint in ``model``'s timm layout.

    Un-chunks FSDP blocks (``blocks.i.j.`` -> ``blocks.j.``); for a timm ViT, timm's
    own filter then converts the native DINOv2 layout (``register_tokens``, ``w12``,
    class position in ``pos_embed``) and resamples ``pos_embed`` to the teacher's grid
    (checkpoints are saved at their training size, not ``--image-size``).
    """
    import re

    state = {
        re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k.removeprefix("backbone.")): v
        for k, v in backbone.items()
    }
    from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

    if isinstance(model, VisionTransformer):
        try:
            return dict(checkpoint_filter_fn(state, model))
        except Exception as exc:  # e.g. another width: pos_embed cannot be reshaped
            raise ValueError(f"conversion failed: {exc}") from None
    state.pop("mask_token", None)
    return state
