"""The distillation loop: frozen teacher, fresh student, EMA export, exact resume, DDP.

One step: read the global batch's tiles (this rank's share), make two views, run the
teacher (no grad) and its heads, turn its logits into targets (centre or Sinkhorn),
run the student, ``loss = L_dino + L_ibot`` (or the cosine variant), backward,
freeze the prototypes early on, clip each submodule, AdamW with scheduled lr and weight
decay, update the centres and the EMA student, log, checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from plismbench.data.base import TileSource
from plismbench.distill import dist
from plismbench.distill.augment import AugmentConfig, draw_params, make_views
from plismbench.distill.centering import EMACentre, SinkhornKnopp, make_targets
from plismbench.distill.data import TileStream
from plismbench.distill.export import export_student, student_config
from plismbench.distill.heads import (
    TeacherHeads,
    heads_from_state,
    random_teacher_heads,
    teacher_state,
)
from plismbench.distill.loss import cosine_loss, dino_loss, ibot_loss
from plismbench.distill.loss.dino import cross_view
from plismbench.distill.loss.ibot import token_chunk
from plismbench.distill.models import (
    StudentBackbone,
    StudentNet,
    Teacher,
    build_student,
    build_teacher,
)
from plismbench.distill.optim import apply_schedules, param_groups
from plismbench.distill.schedules import Schedules, scaled_lr
from plismbench.errors import InputError
from plismbench.utils.device import resolve_device
from plismbench.utils.io import atomic_path

__all__ = ["METRIC_KEYS", "DistillConfig", "DistillResult", "run_distill"]

#: Keys every line of ``metrics.jsonl`` has.
METRIC_KEYS = ("step", "loss", "loss_dino", "loss_ibot", "kl_dino", "kl_ibot", "lr",
               "teacher_entropy")  # fmt: skip
CHECKPOINT_VERSION = 1
#: Options that must not change between a run and its resume.
_FINGERPRINT = ("teacher", "teacher_heads", "student", "loss", "prototypes", "image_size",
                "steps", "batch_size", "lr", "min_lr", "warmup_steps", "teacher_temp_warmup",
                "freeze_last_layer_steps", "layer_decay", "weight_decay", "ema_momentum",
                "clip_grad", "centring", "student_temp", "teacher_temp", "seed",
                "random_head_scale", "blur_probs", "teacher_overrides",
                "student_overrides")  # fmt: skip


@dataclass
class DistillConfig:
    """Every option of a run (the CLI maps one-to-one onto these)."""

    teacher: str
    output_dir: Path
    teacher_heads: str = "random"
    student: str = "vit-base"
    loss: str = "dino-ibot"
    prototypes: int | None = None
    image_size: int = 224
    steps: int = 105_000
    batch_size: int = 2048
    #: Base lr for a batch of 1024; the peak lr is ``lr * sqrt(batch_size / 1024)``.
    lr: float = 4e-3
    min_lr: float = 1e-6
    warmup_steps: int | None = None
    teacher_temp_warmup: int | None = None
    freeze_last_layer_steps: int | None = None
    layer_decay: float = 0.9
    weight_decay: tuple[float, float] = (0.04, 0.4)
    ema_momentum: tuple[float, float] = (0.994, 1.0)
    clip_grad: float = 3.0
    centring: str = "sinkhorn"
    student_temp: float = 0.1
    teacher_temp: tuple[float, float] = (0.04, 0.07)
    seed: int = 0
    random_head_scale: float = 0.1
    blur_probs: tuple[float, float] = (0.0, 0.9)
    device: str = "auto"
    precision: str = "auto"
    workers: int = 4
    log_every: int = 1
    checkpoint_every: int = 1000
    tensorboard: bool = False
    resume: bool = False
    progress: bool = True
    ibot_chunk: int | None = None
    teacher_overrides: dict[str, Any] = field(default_factory=dict)
    student_overrides: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """One clear line for an impossible option."""
        if self.loss not in ("dino-ibot", "cosine"):
            raise InputError(f"--loss must be dino-ibot or cosine, got {self.loss!r}")
        if self.centring not in ("centre", "sinkhorn"):
            raise InputError(f"--centring must be centre or sinkhorn, got {self.centring!r}")
        for name in ("steps", "batch_size", "image_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1")
        if self.prototypes is not None and self.prototypes < 1:
            raise InputError("--prototypes must be >= 1")
        if self.lr <= 0:
            raise InputError("--lr must be > 0")
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise InputError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                )

    def schedules(self) -> Schedules:
        """The run's schedules; unset lengths follow DINOv2's proportions of a run."""
        steps = self.steps
        warm = self.warmup_steps if self.warmup_steps is not None else max(1, steps // 10)
        ttw = self.teacher_temp_warmup
        freeze = self.freeze_last_layer_steps
        return Schedules(
            steps=steps,
            peak_lr=scaled_lr(self.lr, self.batch_size),
            warmup_steps=max(1, warm),
            min_lr=self.min_lr,
            wd_start=self.weight_decay[0],
            wd_end=self.weight_decay[1],
            teacher_temp_start=self.teacher_temp[0],
            teacher_temp_end=self.teacher_temp[1],
            teacher_temp_warmup=(3 * steps) // 10 if ttw is None else ttw,
            ema_start=self.ema_momentum[0],
            ema_end=self.ema_momentum[1],
            freeze_last_layer_steps=max(1, steps // 100) if freeze is None else freeze,
        )

    def fingerprint(self) -> dict[str, Any]:
        """The options a resume must share, JSON-normalised."""
        data = {k: getattr(self, k) for k in _FINGERPRINT}
        return json.loads(json.dumps(data, default=str))


@dataclass
class DistillResult:
    """What a finished run produced."""

    output_dir: Path
    student_dir: Path
    steps: int
    last: dict[str, Any]
    seconds: float
    images_per_s: float


# --- helpers ----------------------------------------------------------------------------------


def _init_distributed(device: torch.device) -> bool:
    """Join torchrun's process group; True when this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as tdist

    if tdist.is_initialized():
        return False
    tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _normaliser(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return lambda x: (x - m) / s


def _load_teacher_checkpoint(path: Path, teacher: Teacher) -> TeacherHeads:
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
            converted = _backbone_state(backbone, inner)
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


def _backbone_state(backbone: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
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


def _ema_update(ema: nn.Module, model: nn.Module, momentum: float) -> None:
    with torch.no_grad():
        e: list[torch.Tensor] = list(ema.parameters())
        s: list[torch.Tensor] = [p.detach() for p in model.parameters()]
        torch._foreach_mul_(e, momentum)
        torch._foreach_add_(e, s, alpha=1.0 - momentum)


def _jsonable(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _Logger:
    """``metrics.jsonl`` (rank 0), optional TensorBoard."""

    def __init__(self, out: Path, resume_step: int, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.writer: Any = None
        if not enabled:
            return
        if resume_step > 0 and self.path.is_file():
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line).get("step", 1 << 62) < resume_step:
                        keep.append(line)
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(f"{k}\n" for k in keep), encoding="utf-8")
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(out / "tensorboard"))
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.writer is not None:
                self.writer.close()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class _State:
    """Everything a step touches."""

    cfg: DistillConfig
    device: torch.device
    precision: str
    teacher: Teacher
    heads: TeacherHeads | None
    student: StudentNet
    model: nn.Module  # the student, DDP-wrapped when distributed
    ema: nn.Module
    optimiser: torch.optim.Optimizer
    dino_targets: EMACentre | SinkhornKnopp
    ibot_targets: EMACentre | SinkhornKnopp
    sched: Schedules
    augment: AugmentConfig
    teacher_norm: Callable[[torch.Tensor], torch.Tensor]
    student_norm: Callable[[torch.Tensor], torch.Tensor]
    built: StudentBackbone


def _build(cfg: DistillConfig, device: torch.device) -> _State:
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp32"):
        raise InputError(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    torch.manual_seed(cfg.seed)
    teacher = build_teacher(cfg.teacher, cfg.image_size, cfg.teacher_overrides)
    heads: TeacherHeads | None = None
    if cfg.loss == "dino-ibot":
        if cfg.teacher_heads == "random":
            heads = random_teacher_heads(
                teacher.dim,
                cfg.prototypes or 131072,
                seed=cfg.seed + 1,
                scale=cfg.random_head_scale,
            )
        else:
            path = Path(cfg.teacher_heads)
            heads = _load_teacher_checkpoint(path, teacher)
            have = (heads.dino_head.num_prototypes, heads.ibot_head.num_prototypes)
            if cfg.prototypes is not None and cfg.prototypes not in have:
                raise InputError(
                    f"--prototypes {cfg.prototypes} does not match the teacher heads in {path} "
                    f"({have[0]} / {have[1]})"
                )
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
    k = (
        (heads.dino_head.num_prototypes, heads.ibot_head.num_prototypes)
        if heads is not None
        else (0, 0)
    )
    student = StudentNet(
        built.module, built.num_prefix_tokens, built.dim, cfg.loss,
        prototypes=k, teacher_dim=teacher.dim,
    )  # fmt: skip
    teacher.backbone.to(device)
    if heads is not None:
        heads.to(device)
    student.to(device)
    ema = copy.deepcopy(student).requires_grad_(False)
    groups = param_groups(student, built.depth, cfg.layer_decay)
    use_fused = device.type == "cuda"
    optimiser = torch.optim.AdamW(groups, lr=0.0, betas=(0.9, 0.999), fused=use_fused or None)
    model: nn.Module = student
    if dist.world() > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None
        )
    return _State(
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
    )


def _views(st: _State, tiles: list[np.ndarray], positions: list[int]) -> torch.Tensor:
    """(2b, 3, S, S) floats in [0, 1]: view 1 of every sample, then view 2."""
    on_device = [torch.from_numpy(np.ascontiguousarray(t)).to(st.device) for t in tiles]
    out = []
    for view in (0, 1):
        params = [
            draw_params(st.cfg.seed, p, view, t.shape[:2], st.augment)  # type: ignore[arg-type]
            for p, t in zip(positions, tiles, strict=True)
        ]
        out.append(make_views(on_device, params, st.augment))
    return torch.cat(out)


def _step(st: _State, step: int, x: torch.Tensor) -> dict[str, float]:
    """One optimisation step on this rank's views ``x``; returns rank-averaged metrics."""
    cfg, sched = st.cfg, st.sched
    tau_t = sched.teacher_temp(step)
    amp = _autocast(st.device, st.precision)
    with torch.no_grad(), amp:
        t_tokens = st.teacher.backbone(st.teacher_norm(x))
    t_cls = t_tokens[:, 0]
    t_patch = t_tokens[:, st.teacher.num_prefix_tokens :]
    with amp:
        out = st.model(st.student_norm(x))
    teacher_entropy = float("nan")
    if cfg.loss == "cosine":
        l_dino = cosine_loss(out[0], t_cls)
        l_ibot = cosine_loss(out[1], t_patch)
        loss = l_dino + l_ibot
        kl_dino, kl_ibot = l_dino.detach(), l_ibot.detach()
    else:
        assert st.heads is not None
        z_cls, z_patch, w_dino, w_ibot = out
        with torch.no_grad(), amp:
            tz_cls = st.heads.dino_head.embed(t_cls.float())
            tz_patch = st.heads.ibot_head.embed(t_patch.reshape(-1, t_patch.shape[-1]).float())
            tw_dino = st.heads.dino_head.prototypes()
            tw_ibot = st.heads.ibot_head.prototypes()
            t_logits_cls = (tz_cls @ tw_dino.t()).float()

        def ibot_logits(lo: int, hi: int) -> torch.Tensor:
            with torch.no_grad(), amp:
                return (tz_patch[lo:hi] @ tw_ibot.t()).float()

        chunk = cfg.ibot_chunk or token_chunk(tw_ibot.shape[0])
        n_cls = t_logits_cls.shape[0]
        dino_t = st.dino_targets.prepare(cross_view(t_logits_cls), n_cls, tau_t, n_cls)
        ibot_t = st.ibot_targets.prepare(ibot_logits, tz_patch.shape[0], tau_t, chunk)
        d = dino_loss(z_cls, w_dino, dino_t, cfg.student_temp)
        i = ibot_loss(z_patch, w_ibot, ibot_t, cfg.student_temp, chunk)
        l_dino, l_ibot = d.cross_entropy, i.cross_entropy
        loss = l_dino + l_ibot
        kl_dino, kl_ibot = d.kl, i.kl
        teacher_entropy = float(d.teacher_entropy)
    loss.backward()
    if sched.last_layer_frozen(step):
        for name, p in st.student.named_parameters():
            if ".last_layer." in name:
                p.grad = None
    if cfg.clip_grad > 0:
        for module in st.student.submodules().values():
            params = [p for p in module.parameters() if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
    lr, wd = sched.lr(step), sched.weight_decay(step)
    apply_schedules(st.optimiser, lr, wd)
    st.optimiser.step()
    st.optimiser.zero_grad(set_to_none=True)
    st.dino_targets.update()
    st.ibot_targets.update()
    _ema_update(st.ema, st.student, sched.ema_momentum(step))
    values = torch.tensor(
        [float(loss.detach()), float(l_dino.detach()), float(l_ibot.detach()), float(kl_dino),
         float(kl_ibot),
         teacher_entropy],
        dtype=torch.float64,
    )  # fmt: skip
    dist.all_reduce(values)
    values /= dist.world()
    loss_v, ld, li, kd, ki, ent = values.tolist()
    return {
        "step": step,
        "loss": loss_v,
        "loss_dino": ld,
        "loss_ibot": li,
        "kl_dino": kd,
        "kl_ibot": ki,
        "lr": lr,
        "teacher_entropy": _jsonable(ent),
        "teacher_temp": tau_t,
        "weight_decay": wd,
        "ema_momentum": sched.ema_momentum(step),
    }


def _save_checkpoint(st: _State, path: Path, next_step: int) -> None:
    payload = {
        "version": CHECKPOINT_VERSION,
        "step": next_step,
        "config": st.cfg.fingerprint(),
        "student": st.student.state_dict(),
        "ema": st.ema.state_dict(),
        "optimiser": st.optimiser.state_dict(),
        "dino_targets": st.dino_targets.state_dict(),
        "ibot_targets": st.ibot_targets.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(st: _State, path: Path) -> int:
    try:
        payload = torch.load(path, map_location=st.device, weights_only=True)
    except Exception as exc:
        raise InputError(f"{path} cannot be read as a distill checkpoint: {exc}") from None
    if payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: unknown checkpoint version {payload.get('version')!r}")
    want = st.cfg.fingerprint()
    diff = [k for k in want if payload["config"].get(k) != want[k]]
    if diff:
        k = diff[0]
        raise InputError(
            f"{path} was written with {k}={payload['config'].get(k)!r}, this run has "
            f"{k}={want[k]!r}; resume with the same options or use a new --output-dir"
        )
    st.student.load_state_dict(payload["student"])
    st.ema.load_state_dict(payload["ema"])
    st.optimiser.load_state_dict(payload["optimiser"])
    st.dino_targets.load_state_dict(payload["dino_targets"])
    st.ibot_targets.load_state_dict(payload["ibot_targets"])
    return int(payload["step"])


def _export(st: _State, out: Path) -> Path:
    built = st.built
    config = student_config(
        built.arch,
        built.model_args,
        name=f"{out.name}-student",
        num_features=built.dim,
        num_prefix_tokens=built.num_prefix_tokens,
        image_size=st.cfg.image_size,
        mean=st.teacher.mean,
        std=st.teacher.std,
        provenance={"teacher": st.cfg.teacher, "loss": st.cfg.loss, "steps": st.cfg.steps},
    )
    return export_student(st.ema.backbone, out / "student", config)  # type: ignore[arg-type]


@contextlib.contextmanager
def _progress(enabled: bool, total: int, start: int) -> Iterator[Callable[[str], None]]:
    from plismbench.utils.progress import make_progress

    with make_progress(enabled=enabled) as bar:
        task = bar.add_task("distill", total=total, completed=start)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=text)

        yield advance


def run_distill(cfg: DistillConfig, source: TileSource) -> DistillResult:
    """Train ``cfg.student`` from ``cfg.teacher`` on ``source``; see :func:`distill`."""
    cfg.check()
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    created = _init_distributed(device)
    try:
        return _run(cfg, source, device)
    finally:
        if created:
            import torch.distributed as tdist

            with contextlib.suppress(Exception):
                tdist.barrier()
            tdist.destroy_process_group()


def _run(cfg: DistillConfig, source: TileSource, device: torch.device) -> DistillResult:
    out = Path(cfg.output_dir)
    world, rank = dist.world(), dist.rank()
    if cfg.batch_size % world:
        raise InputError(f"--batch-size {cfg.batch_size} is not divisible by {world} processes")
    if out.exists() and not out.is_dir():
        raise InputError(f"--output-dir {out} exists and is not a folder")
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not cfg.resume:
        raise InputError(
            f"{ckpt} exists: pass --resume to continue that run, or use a new --output-dir"
        )
    out.mkdir(parents=True, exist_ok=True)
    st = _build(cfg, device)
    start = _load_checkpoint(st, ckpt) if (cfg.resume and ckpt.exists()) else 0
    stream = TileStream(source, seed=cfg.seed, workers=cfg.workers)
    logger = _Logger(out, start, cfg.tensorboard, enabled=rank == 0)
    local = cfg.batch_size // world
    st.student.train()

    def positions(step: int) -> list[int]:
        base = step * cfg.batch_size + rank * local
        return list(range(base, base + local))

    last: dict[str, Any] = {}
    began = time.perf_counter()
    seen = 0
    pending = stream.fetch(positions(start)) if start < cfg.steps else []
    try:
        with _progress(cfg.progress and rank == 0, cfg.steps, start) as advance:
            for step in range(start, cfg.steps):
                t0 = time.perf_counter()
                tiles = [f.result() for f in pending]
                if step + 1 < cfg.steps:
                    pending = stream.fetch(positions(step + 1))
                x = _views(st, tiles, positions(step))
                record = _step(st, step, x)
                if not math.isfinite(record["loss"]):
                    raise InputError(f"the loss is not finite at step {step}; lower --lr")
                seen += cfg.batch_size
                elapsed = time.perf_counter() - t0
                record["img_per_s"] = cfg.batch_size / max(elapsed, 1e-9)
                last = record
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    logger.log(record)
                done = step + 1
                if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                    _save_checkpoint(st, ckpt, done)
                advance(f"distill loss {record['loss']:.3f} {record['img_per_s']:.1f} img/s")
        student_dir = out / "student"
        if rank == 0:
            student_dir = _export(st, out)
    finally:
        logger.close()
        stream.close()
    seconds = time.perf_counter() - began
    return DistillResult(
        output_dir=out,
        student_dir=student_dir,
        steps=cfg.steps,
        last=last,
        seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else 0.0,
    )


def config_from(**options: Any) -> DistillConfig:
    """A :class:`DistillConfig` from keyword options, rejecting unknown names clearly."""
    names = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(f"unknown distill option {unknown[0]!r}")
    return DistillConfig(**options)
