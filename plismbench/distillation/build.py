"""Build everything a step touches: teacher (half precision, frozen), heads, student, optimiser."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plismbench.distillation.augment import AugmentConfig
from plismbench.distillation.centering import EMACentre, SinkhornKnopp, make_targets
from plismbench.distillation.config import DistillConfig, heads_warning
from plismbench.distillation.heads import TeacherHeads, random_teacher_heads
from plismbench.distillation.models import (
    StudentBackbone,
    StudentNet,
    Teacher,
    build_student,
    build_teacher,
)
from plismbench.distillation.optim import param_groups
from plismbench.distillation.schedules import Schedules
from plismbench.distillation.teacher_ckpt import load_teacher_checkpoint
from plismbench.errors import InputError
from plismbench.utils import distributed as dist

__all__ = ["State", "autocast", "build", "heads_warning", "resolve_precision"]

_log = logging.getLogger("plismbench.distill")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on a GPU and fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16/fp16 autocast, or nothing for fp32."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=DTYPES[precision])
    return contextlib.nullcontext()


def _normaliser(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return lambda x: (x - m) / s


@dataclass
class State:
    """Everything a step touches."""

    cfg: DistillConfig
    device: torch.device
    precision: str
    teacher: Teacher
    heads: TeacherHeads | None
    student: StudentNet
    model: nn.Module  # the student, DDP-wrapped and/or compiled
    ema: nn.Module
    optimiser: torch.optim.Optimizer
    dino_targets: EMACentre | SinkhornKnopp
    ibot_targets: EMACentre | SinkhornKnopp
    sched: Schedules
    augment: AugmentConfig
    teacher_norm: Callable[[torch.Tensor], torch.Tensor]
    student_norm: Callable[[torch.Tensor], torch.Tensor]
    built: StudentBackbone
    scaler: torch.amp.GradScaler | None = None
    notes: list[str] = field(default_factory=list)
    #: Unreadable tiles met so far (corpus index -> the one-line reason); checkpointed.
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def teacher_dtype(self) -> torch.dtype:
        """The dtype the teacher's weights are held in."""
        return next(self.teacher.backbone.parameters()).dtype


def _heads(cfg: DistillConfig, teacher: Teacher) -> TeacherHeads | None:
    if cfg.loss != "dino-ibot":
        return None
    choice = cfg.teacher_heads or "random"
    if choice in ("random", "learn"):
        return random_teacher_heads(teacher.dim, cfg.num_prototypes(), seed=cfg.seed + 1,
                                    scale=cfg.random_head_scale)  # fmt: skip
    path = Path(choice)
    heads = load_teacher_checkpoint(path, teacher)
    have = (heads.dino_head.num_prototypes, heads.ibot_head.num_prototypes)
    if cfg.prototypes is not None and cfg.prototypes not in have:
        raise InputError(
            f"--prototypes {cfg.prototypes} does not match the teacher heads in {path} "
            f"({have[0]} / {have[1]})"
        )
    return heads


def build(cfg: DistillConfig, device: torch.device) -> State:
    """Teacher (frozen, in the run's half precision on a GPU), heads, student, AdamW, EMA."""
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    teacher = build_teacher(cfg.teacher, cfg.image_size, cfg.teacher_overrides)
    heads = _heads(cfg, teacher)
    torch.manual_seed(cfg.seed + 2)
    built = build_student(cfg.student, cfg.image_size, cfg.student_overrides)
    with torch.no_grad():
        probe = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
        grid = built.module.forward_features(probe)  # type: ignore[operator]
    student_patches = int(grid.shape[1]) - built.num_prefix_tokens
    if student_patches != teacher.num_patches:
        raise InputError(
            f"at {cfg.image_size} px the student has {student_patches} patch tokens and the "
            f"teacher {teacher.num_patches}; use the same patch size (e.g. 14) for both"
        )
    k = (heads.dino_head.num_prototypes, heads.ibot_head.num_prototypes) if heads else (0, 0)
    student = StudentNet(built.module, built.num_prefix_tokens, built.dim, cfg.loss,
                         prototypes=k, teacher_dim=teacher.dim)  # fmt: skip
    if cfg.grad_checkpointing:
        setter = getattr(built.module, "set_grad_checkpointing", None)
        if setter is None:
            raise InputError(f"student {cfg.student!r} has no activation checkpointing")
        setter(True)
    # the frozen teacher is held in the run's half precision (4.5 GB -> 2.3 GB for ViT-g)
    teacher.backbone.to(device=device, dtype=DTYPES[precision])
    if heads is not None:
        heads.to(device)
    student.to(device)
    ema = copy.deepcopy(student).requires_grad_(False)
    groups = param_groups(student, built.depth, cfg.layer_decay, cfg.patch_embed_lr_mult)
    optimiser = torch.optim.AdamW(groups, lr=0.0, betas=(0.9, 0.999),
                                  fused=(device.type == "cuda") or None)  # fmt: skip
    model: nn.Module = student
    if dist.world() > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(student, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return State(
        cfg=cfg,
        device=device,
        precision=precision,
        teacher=teacher,
        heads=heads,
        student=student,
        model=model,
        ema=ema,
        optimiser=optimiser,
        dino_targets=make_targets(cfg.centring, max(k[0], 1)).to(device),
        ibot_targets=make_targets(cfg.centring, max(k[1], 1)).to(device),
        sched=cfg.schedules(),
        augment=AugmentConfig(image_size=cfg.image_size, blur_probs=cfg.blur_probs),
        teacher_norm=_normaliser(teacher.mean, teacher.std, device),
        student_norm=_normaliser(teacher.mean, teacher.std, device),
        built=built,
        scaler=scaler,
    )
