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

__all__ = ["PRESETS", "PROTOTYPES", "DistillConfig", "config_from", "heads_warning",
           "load_yaml", "resolve_config"]  # fmt: skip

#: DINOv2's epoch (``OFFICIAL_EPOCH_LENGTH``): schedule lengths are given in these.
EPOCH = 1250
#: The paper's run is 105,000 iterations = 84 DINOv2 epochs.
PAPER_STEPS = 105_000
#: The paper's number of prototypes K (H-Optimus-0's heads; DINOv2 ViT-g's 131,072).
PROTOTYPES = 131_072
#: DINOv2's schedule lengths, in epochs of the paper's 84: lr warmup, teacher-temperature
#: warmup, frozen last layer. Unset lengths are these fractions of ``--steps``.
SCHEDULE_EPOCHS = (16, 30, 1)


def _default_workers() -> int:
    """``min(4, CPUs this process may use)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


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
    prototypes: int | None = opt(None, f"K for random/learnt heads (default {PROTOTYPES}).",
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
    workers: int = opt(None, "Tile reading workers (default min(4, CPU count)).",
                       factory=_default_workers)  # fmt: skip
    max_bad_tiles: float = opt(
        0.001, "Stop when more than ceil(this fraction of the corpus) tiles are unreadable "
        "(each is skipped: replaced by the next readable tile).")  # fmt: skip
    # the help text shared by every command's --overwrite (cli/options.py); for distill:
    # start a run again over its checkpoint.pt, relearn a teacher_heads.pt of other options
    overwrite: bool = opt(False, "Recompute what is done (otherwise it is reused).")
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
    accept_licence: bool = opt(
        False, "Accept a teacher licence that restricts distillation (recorded in config.yaml).")

    def check_licence(self) -> None:
        """A teacher whose licence forbids training models that replicate it needs consent."""
        if self.accept_licence or self.teacher.startswith("timm:"):
            return
        from plismbench.extractors.registry import get_extractor

        try:
            spec = get_extractor(self.teacher)
        except InputError:
            return  # not a registry model: loading it says what is wrong
        if "no-replicating-training" in spec.licence_restrictions:
            raise InputError(
                f"--teacher {spec.name}: its licence ({spec.licence}) forbids training models "
                "that replicate it; pass --accept-licence if your use is permitted"
            )

    def check(self) -> None:
        """One clear line for an impossible option."""
        if not self.teacher:
            raise InputError("--teacher is required")
        self.check_licence()
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
        if not 0 <= self.max_bad_tiles <= 1:
            raise InputError("--max-bad-tiles must be a fraction in [0, 1]")
        if self.workers < 0:
            raise InputError("--workers must be >= 0")
        names = ("--warmup-steps", "--teacher-temp-warmup", "--freeze-last-layer-steps")
        for flag, length in zip(names, self.lengths(), strict=True):
            if length > self.steps:
                raise InputError(f"{flag} {length} is longer than the run (--steps "
                                 f"{self.steps}); shorten it or leave it unset (a fraction of "
                                 "--steps)")  # fmt: skip
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

        given = (self.warmup_steps, self.teacher_temp_warmup, self.freeze_last_layer_steps)
        warm, ttw, freeze = (part(v, e) for v, e in zip(given, SCHEDULE_EPOCHS, strict=True))
        return warm, ttw, freeze

    def num_prototypes(self) -> int:
        """K of random or learnt heads: ``--prototypes``, else :data:`PROTOTYPES`."""
        return self.prototypes or PROTOTYPES

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


#: Named starting points, as deltas over :class:`DistillConfig`'s defaults (which are
#: already the H0-mini paper's recipe on DINOv2's: Table 5, ssl_default_config.yaml and the
#: vitg14 config). Schedule lengths stay fractions of ``--steps``: a preset never pins them.
PRESETS: dict[str, dict[str, Any]] = {
    "h0-mini": {"teacher": "h-optimus-0", "prototypes": PROTOTYPES},
}


def heads_warning(cfg: DistillConfig) -> str | None:
    """The warning for a pretrained teacher distilled through random heads, if it applies."""
    if cfg.loss != "dino-ibot" or cfg.teacher.startswith("timm:"):
        return None
    if cfg.teacher_heads is None:
        return (
            f"WARNING: teacher {cfg.teacher!r} is pretrained but no --teacher-heads was given: "
            "its DINO/iBOT heads are RANDOM and frozen. Pass --teacher-heads PATH (the "
            "teacher's checkpoint), learn, random (to silence this) or --loss cosine."
        )
    return None

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
