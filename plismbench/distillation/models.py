"""Teacher and student builders: registry or ``timm:ARCH`` teachers, preset students.

A backbone here maps normalised ``(B, 3, S, S)`` images to tokens ``(B, N, D)`` whose
first ``num_prefix_tokens`` are CLS and registers, the rest patch tokens in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from plismbench.distillation.config import PROTOTYPES
from plismbench.distillation.heads import ProjectionHead
from plismbench.errors import InputError

__all__ = [
    "STUDENT_PRESETS",
    "StudentNet",
    "Teacher",
    "build_student",
    "build_teacher",
]

#: The paper's student (ViT-B/14, 4 registers, SwiGLU hidden 2048) and smaller ones.
STUDENT_ARCH = "vit_base_patch14_reg4_dinov2"
_STUDENT_COMMON: dict[str, Any] = {
    "mlp_ratio": 5.33334,
    "mlp_layer": "SwiGLUPacked",
    "act_layer": "SiLU",
    "init_values": 1e-5,
    "num_classes": 0,
    "reg_tokens": 4,
}
STUDENT_PRESETS: dict[str, dict[str, Any]] = {
    "vit-tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "vit-small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "vit-base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


class _Tokens(nn.Module):
    """``forward_features`` of a timm model (tokens after the final norm)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)  # type: ignore[operator]


def _resolve(kwargs: dict[str, Any]) -> dict[str, Any]:
    from plismbench.extractors.loaders import resolve_layer

    return {k: resolve_layer(v) if k.endswith("_layer") else v for k, v in kwargs.items()}


def _create(arch: str, kwargs: dict[str, Any], what: str) -> nn.Module:
    import timm

    try:
        return timm.create_model(arch, pretrained=False, **_resolve(kwargs))
    except Exception as exc:
        raise InputError(f"{what}: cannot build timm architecture {arch!r}: {exc}") from None


def _set_size(model: nn.Module, image_size: int, what: str) -> None:
    """Resize a timm ViT's position embedding to ``image_size`` when it differs."""
    embed = getattr(model, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if size is None or tuple(size) == (image_size, image_size):
        return
    setter = getattr(model, "set_input_size", None)
    if setter is None:
        raise InputError(f"{what} is built for {tuple(size)} px and cannot take {image_size} px")
    setter(img_size=image_size)


@dataclass
class Teacher:
    """A frozen backbone with what distillation needs to know about it."""

    name: str
    backbone: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_prefix_tokens: int
    dim: int = 0
    num_patches: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def build_teacher(
    name: str, image_size: int, overrides: dict[str, Any] | None = None, pretrained: bool = True
) -> Teacher:
    """``timm:ARCH`` (random weights), a registry name, ``hf-hub:org/name`` or a folder."""
    overrides = dict(overrides or {})
    if name.startswith("timm:"):
        arch = name.split(":", 1)[1]
        kwargs = {"num_classes": 0, "img_size": image_size, **overrides}
        model = _create(arch, kwargs, f"teacher {name!r}")
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        teacher = Teacher(
            name=name,
            backbone=_Tokens(model),
            mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
            std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
            num_prefix_tokens=int(getattr(model, "num_prefix_tokens", 1)),
            info={"arch": arch, "kwargs": kwargs},
        )
    else:
        from plismbench.extractors.registry import build_backbone, get_extractor

        spec = get_extractor(name)
        if spec.pooling == "model":
            raise InputError(
                f"teacher {spec.name!r} gives pooled features, not tokens; distillation needs "
                "a ViT teacher with CLS and patch tokens"
            )
        try:
            backbone = build_backbone(spec, pretrained=pretrained, **overrides)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"teacher {spec.name!r} cannot be loaded: {exc}") from None
        inner = getattr(backbone, "model", backbone)
        _set_size(inner, image_size, f"teacher {spec.name!r}")
        teacher = Teacher(
            name=spec.name,
            backbone=backbone,
            mean=spec.mean,
            std=spec.std,
            num_prefix_tokens=spec.num_prefix_tokens,
            info={"spec": spec.name},
        )
    teacher.backbone.eval().requires_grad_(False)
    with torch.no_grad():
        tokens = teacher.backbone(torch.zeros(1, 3, image_size, image_size))
    if tokens.ndim != 3:
        raise InputError(f"teacher {name!r} does not return tokens (B, N, D)")
    teacher.dim = int(tokens.shape[-1])
    teacher.num_patches = int(tokens.shape[1]) - teacher.num_prefix_tokens
    return teacher


@dataclass
class StudentBackbone:
    """A fresh timm backbone and the arguments that rebuild it (for the export)."""

    module: nn.Module
    arch: str
    model_args: dict[str, Any]
    num_prefix_tokens: int
    dim: int
    depth: int


def build_student(
    name: str, image_size: int, overrides: dict[str, Any] | None = None
) -> StudentBackbone:
    """A preset (``vit-tiny``, ``vit-small``, ``vit-base``) or ``timm:ARCH``, random weights."""
    overrides = dict(overrides or {})
    if name in STUDENT_PRESETS:
        arch = STUDENT_ARCH
        args = {**_STUDENT_COMMON, **STUDENT_PRESETS[name], "img_size": image_size, **overrides}
    elif name.startswith("timm:"):
        arch = name.split(":", 1)[1]
        args = {"num_classes": 0, "img_size": image_size, **overrides}
    else:
        presets = ", ".join(STUDENT_PRESETS)
        raise InputError(f"unknown student {name!r} (use {presets} or timm:ARCH)")
    model = _create(arch, args, f"student {name!r}")
    if getattr(model, "cls_token", None) is None:
        raise InputError(f"student {name!r} has no CLS token; a ViT student is needed")
    blocks = getattr(model, "blocks", [])
    return StudentBackbone(
        module=model,
        arch=arch,
        model_args=args,
        num_prefix_tokens=int(getattr(model, "num_prefix_tokens", 1)),
        dim=int(getattr(model, "num_features", 0) or getattr(model, "embed_dim", 0)),
        depth=len(blocks),
    )


class StudentNet(nn.Module):
    """Student backbone plus DINO/iBOT heads (``dino-ibot``) or linear adapters (``cosine``).

    ``forward`` returns the normalised CLS and patch bottlenecks and both prototype
    matrices (``dino-ibot``), or the adapted CLS and patch tokens (``cosine``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_prefix_tokens: int,
        dim: int,
        loss: str,
        *,
        prototypes: tuple[int, int] = (PROTOTYPES, PROTOTYPES),
        teacher_dim: int = 0,
        dino_bottleneck: int = 384,
        ibot_bottleneck: int = 256,
        hidden: int = 2048,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_prefix_tokens = num_prefix_tokens
        self.loss = loss
        self.dino_head: ProjectionHead | None = None
        self.ibot_head: ProjectionHead | None = None
        self.cls_adapter: nn.Linear | None = None
        self.patch_adapter: nn.Linear | None = None
        if loss == "cosine":
            self.cls_adapter = nn.Linear(dim, teacher_dim)
            self.patch_adapter = nn.Linear(dim, teacher_dim)
        else:
            self.dino_head = ProjectionHead(
                dim, prototypes[0], hidden=hidden, bottleneck=dino_bottleneck
            )
            self.ibot_head = ProjectionHead(
                dim, prototypes[1], hidden=hidden, bottleneck=ibot_bottleneck
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tokens = self.backbone.forward_features(x)  # type: ignore[operator]
        cls = tokens[:, 0]
        if self.cls_adapter is not None and self.patch_adapter is not None:
            return self.cls_adapter(cls), self.patch_adapter(tokens[:, self.num_prefix_tokens :])
        assert self.dino_head is not None and self.ibot_head is not None
        z_cls = self.dino_head.embed(cls)
        # row b * P + p, the teacher's order (see step.flatten_patches)
        patches = tokens[:, self.num_prefix_tokens :]
        z_patch = self.ibot_head.embed(patches.reshape(-1, patches.shape[-1]))
        return z_cls, z_patch, self.dino_head.prototypes(), self.ibot_head.prototypes()

    def submodules(self) -> dict[str, nn.Module]:
        """The parts clipped separately."""
        parts: dict[str, nn.Module] = {"backbone": self.backbone}
        for key in ("dino_head", "ibot_head", "cls_adapter", "patch_adapter"):
            module = getattr(self, key)
            if module is not None:
                parts[key] = module
        return parts
