"""Every option of a distill run, declared once: the dataclass, its YAML file and the CLI.

Each field carries its help text, its CLI flag and whether a resume must share it
(``fingerprint``). Values resolve in this order: field defaults, then ``--preset``, then
a YAML ``--config`` file, then explicit options. The resolved configuration (with the
schedule lengths made concrete) is written to ``RUN/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plismbench.distillation.schedules import Schedules, scaled_lr
from plismbench.errors import InputError

__all__ = ["PRESETS", "DistillConfig", "config_from", "load_yaml", "resolve_config"]

#: DINOv2's epoch (``OFFICIAL_EPOCH_LENGTH``): schedule lengths are given in these.
EPOCH = 1250
#: The paper's run is 105,000 iterations = 84 DINOv2 epochs.
PAPER_STEPS = 105_000


def opt(default: Any, help: str, *, cli: str | None = "", fingerprint: bool = False,
        factory: Any = None) -> Any:  # fmt: skip
    """A config field; ``cli=""`` derives ``--field-name``, ``cli=None`` keeps it YAML-only."""
    meta = {"help": help, "cli": cli, "fingerprint": fingerprint}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DistillConfig:
    """Every option of a run; ``plismbench distill --help`` is generated from these fields."""

    teacher: str = opt("", "Registry name, hf-hub:org/name, a folder or timm:ARCH.",
                       fingerprint=True)  # fmt: skip
    output_dir: Path | None = opt(  # noqa: RUF009
        None, "RUN folder: config.yaml, metrics, student/.", cli="--out-dir"
    )
    teacher_heads: str | None = opt(
        None, "random, learn (fit heads on the frozen teacher first) or a DINOv2 teacher "
        "checkpoint with dino_head.*/ibot_head.*; a pretrained teacher without it warns.",
        fingerprint=True)  # fmt: skip
    learn_heads_steps: int = opt(
        2000, "Steps of head-only self-distillation for --teacher-heads learn.", fingerprint=True
    )
    student: str = opt("vit-base", "vit-tiny, vit-small, vit-base or timm:ARCH.", fingerprint=True)
    loss: str = opt("dino-ibot", "dino-ibot or cosine (no heads).", fingerprint=True)
    prototypes: int | None = opt(None, "K for random/learnt heads (default 131072).",
                                 fingerprint=True)  # fmt: skip
    image_size: int = opt(224, "Global crop size in pixels.", fingerprint=True)
    steps: int = opt(PAPER_STEPS, "Optimiser steps.", fingerprint=True)
    batch_size: int = opt(2048, "Global batch (all processes, all accumulation micro-steps).",
                          fingerprint=True)  # fmt: skip
    grad_accum: int = opt(1, "Micro-batches per step on each process (gradient accumulation).")
    lr: float = opt(4e-3, "Base lr for a batch of 1024 (peak = lr * sqrt(B/1024)).",
                    fingerprint=True)  # fmt: skip
    min_lr: float = opt(1e-6, "Final lr of the cosine decay.", fingerprint=True)
    warmup_steps: int | None = opt(
        None, "lr warmup steps (default 16/84 of --steps: 20,000 of 105,000).", fingerprint=True
    )
    teacher_temp_warmup: int | None = opt(
        None, "Teacher temperature warmup steps (default 30/84 of --steps: 37,500).",
        fingerprint=True)  # fmt: skip
    freeze_last_layer_steps: int | None = opt(
        None, "Steps with the student prototypes frozen (default 1/84 of --steps: 1,250).",
        fingerprint=True)  # fmt: skip
    layer_decay: float = opt(0.9, "Layer-wise lr decay.", fingerprint=True)
    patch_embed_lr_mult: float = opt(0.2, "lr multiplier of the patch embedding (DINOv2).",
                                     fingerprint=True)  # fmt: skip
    weight_decay: tuple[float, float] = opt((0.04, 0.4), "Weight decay start,end (cosine).",
                                            fingerprint=True)  # fmt: skip
    ema_momentum: tuple[float, float] = opt(
        (0.994, 1.0), "EMA momentum start,end (cosine); equal = constant.", cli="--ema",
        fingerprint=True)  # fmt: skip
    clip_grad: float = opt(3.0, "Gradient norm clip per submodule (0: off).", fingerprint=True)
    centring: str = opt("sinkhorn", "sinkhorn (log-domain, 3 iterations) or centre.",
                        fingerprint=True)  # fmt: skip
    student_temp: float = opt(0.1, "Student softmax temperature.", fingerprint=True)
    teacher_temp: tuple[float, float] = opt((0.04, 0.07), "Teacher temperature start,end.",
                                            fingerprint=True)  # fmt: skip
    seed: int = opt(0, "Seed of data order, augmentations and initialisation.", fingerprint=True)
    random_head_scale: float = opt(0.1, "Logit std of random teacher heads.", fingerprint=True)
    blur_probs: tuple[float, float] = opt(
        (0.0, 0.9), "Blur probability of view 1,view 2 (DINOv2 effective 0,0.9).",
        fingerprint=True)  # fmt: skip
    corpus: str | None = opt(None, "Tile corpus: a folder of images, parquet/tar/h5 shards.")
    device: str = opt("auto", "auto, cpu or cuda.")
    precision: str = opt("auto", "auto (bf16 on GPU, fp32 on CPU), bf16, fp16 (GradScaler) or "
                         "fp32.")  # fmt: skip
    grad_checkpointing: bool = opt(False, "Recompute student blocks in backward (less memory).")
    compile: bool = opt(False, "torch.compile the student.")
    workers: int = opt(4, "Tile reading workers.")
    log_every: int = opt(1, "Log every N steps.")
    checkpoint_every: int = opt(1000, "Checkpoint every N steps.")
    tensorboard: bool = opt(False, "Also log to RUN/tensorboard (needs tensorboard).")
    wandb: str | None = opt(None, "Also log to this Weights & Biases project (needs wandb).")
    resume: bool = opt(False, "Continue from RUN/checkpoint.pt.")
    progress: bool = opt(True, "Show a progress line.")
    ibot_chunk: int | None = opt(None, "Tokens per iBOT loss chunk (default 2^26 / K).")
    teacher_overrides: dict[str, Any] = opt(  # noqa: RUF009
        None, "timm kwargs for the teacher.", cli=None, fingerprint=True, factory=dict
    )
    student_overrides: dict[str, Any] = opt(  # noqa: RUF009
        None, "timm kwargs for the student.", cli=None, fingerprint=True, factory=dict
    )
    preset: str | None = opt(None, "Start from a named preset (h0-mini).")

    def check(self) -> None:
        """One clear line for an impossible option."""
        if not self.teacher:
            raise InputError("--teacher is required")
        if self.output_dir is None:
            raise InputError("--out-dir is required")
        choices = {"loss": ("dino-ibot", "cosine"), "centring": ("centre", "sinkhorn"),
                   "precision": ("auto", "bf16", "fp16", "fp32")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"--{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("steps", "batch_size", "image_size", "log_every", "checkpoint_every",
                     "grad_accum", "learn_heads_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1")
        if self.prototypes is not None and self.prototypes < 1:
            raise InputError("--prototypes must be >= 1")
        if self.lr <= 0:
            raise InputError("--lr must be > 0")
        for name, package in (("tensorboard", "tensorboard"), ("wandb", "wandb")):
            if getattr(self, name):
                import importlib.util

                if importlib.util.find_spec(package) is None:
                    raise InputError(f"--{name} needs the {package} package: pip install {package}")

    def lengths(self) -> tuple[int, int, int]:
        """(lr warmup, teacher-temperature warmup, frozen last layer) in steps.

        Unset lengths keep DINOv2's epochs in proportion to the paper's 84-epoch run:
        16, 30 and 1 epoch of 1,250 iterations at ``--steps 105000``.
        """
        def part(value: int | None, epochs: int) -> int:
            if value is not None:
                return value
            return max(1, round(self.steps * epochs * EPOCH / PAPER_STEPS))

        return (part(self.warmup_steps, 16), part(self.teacher_temp_warmup, 30),
                part(self.freeze_last_layer_steps, 1))  # fmt: skip

    def schedules(self) -> Schedules:
        """The run's per-step schedules."""
        warm, ttw, freeze = self.lengths()
        return Schedules(
            steps=self.steps,
            peak_lr=scaled_lr(self.lr, self.batch_size),
            warmup_steps=max(1, warm),
            min_lr=self.min_lr,
            wd_start=self.weight_decay[0],
            wd_end=self.weight_decay[1],
            teacher_temp_start=self.teacher_temp[0],
            teacher_temp_end=self.teacher_temp[1],
            teacher_temp_warmup=ttw,
            ema_start=self.ema_momentum[0],
            ema_end=self.ema_momentum[1],
            freeze_last_layer_steps=freeze,
        )

    def fingerprint(self) -> dict[str, Any]:
        """The options a resume must share, JSON-normalised."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("fingerprint")}  # fmt: skip
        return json.loads(json.dumps(data, default=str))

    def resolved(self) -> dict[str, Any]:
        """Every option with the schedule lengths made concrete (for ``config.yaml``)."""
        data = json.loads(json.dumps(dataclasses.asdict(self), default=str))
        warm, ttw, freeze = self.lengths()
        data.update(warmup_steps=warm, teacher_temp_warmup=ttw, freeze_last_layer_steps=freeze)
        data["derived"] = {
            "peak_lr": scaled_lr(self.lr, self.batch_size),
            "epochs_of_1250": self.steps / EPOCH,
            "images_seen": self.steps * self.batch_size,
        }
        return data


#: Named starting points. ``h0-mini``: the H0-mini paper (Table 5) on DINOv2's defaults
#: (ssl_default_config.yaml, vitg14 config): an epoch is 1,250 iterations.
PRESETS: dict[str, dict[str, Any]] = {
    "h0-mini": {
        "teacher": "h-optimus-0",
        "student": "vit-base",
        "loss": "dino-ibot",
        "prototypes": 131_072,
        "image_size": 224,
        "batch_size": 2048,
        "steps": PAPER_STEPS,
        "lr": 4e-3,
        "min_lr": 1e-6,
        "warmup_steps": 16 * EPOCH,
        "teacher_temp_warmup": 30 * EPOCH,
        "freeze_last_layer_steps": 1 * EPOCH,
        "layer_decay": 0.9,
        "patch_embed_lr_mult": 0.2,
        "weight_decay": (0.04, 0.4),
        "ema_momentum": (0.994, 1.0),
        "clip_grad": 3.0,
        "centring": "sinkhorn",
        "student_temp": 0.1,
        "teacher_temp": (0.04, 0.07),
        "blur_probs": (0.0, 0.9),
    },
}

_PAIRS = {f.name for f in dataclasses.fields(DistillConfig) if "tuple" in str(f.type)}


def _coerce(name: str, value: Any) -> Any:
    if name in _PAIRS and value is not None:
        if isinstance(value, str):
            value = value.split(",")
        try:
            a, b = (float(v) for v in value)
        except (TypeError, ValueError):
            raise InputError(f"{name} takes two comma-separated numbers, got {value!r}") from None
        return (a, b)
    if name == "output_dir" and value is not None:
        return Path(value)
    return value


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The options of a YAML config file (a mapping of field names)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config {p} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--config {p} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"--config {p} must hold a mapping of options")
    data.pop("derived", None)
    return data


def config_from(**options: Any) -> DistillConfig:
    """A :class:`DistillConfig` from keyword options, rejecting unknown names clearly."""
    names = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(f"unknown distill option {unknown[0]!r}")
    return DistillConfig(**{k: _coerce(k, v) for k, v in options.items()})


def resolve_config(
    options: dict[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    preset: str | None = None,
) -> DistillConfig:
    """Defaults, then the preset, then ``config_file``, then ``options`` (None = unset)."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    from_file = load_yaml(config_file) if config_file is not None else {}
    name = preset or given.get("preset") or from_file.get("preset")
    merged: dict[str, Any] = {}
    if name:
        if name not in PRESETS:
            raise InputError(f"unknown --preset {name!r} (use {', '.join(PRESETS)})")
        merged.update(PRESETS[name], preset=name)
    merged.update(from_file)
    merged.update(given)
    try:
        return config_from(**merged)
    except InputError as exc:
        where = f" in {config_file}" if config_file is not None else ""
        raise InputError(f"{exc}{where}") from None
