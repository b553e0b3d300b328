"""The run folder: its file names, ``config.yaml``, and the checks made before anything in
it is touched.

A command that is refused writes nothing: :func:`preflight` checks the folder, a resumed
checkpoint's options and a learnt ``teacher_heads.pt``'s fingerprint before the run builds
or writes anything. Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plismbench.distillation.config import DistillConfig, heads_warning
from plismbench.errors import InputError
from plismbench.utils.io import atomic_path

__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "HEADS_FILE", "METRICS_FILE", "DistillResult",
           "dry_run", "heads_fingerprint", "preflight", "warn", "write_config"]  # fmt: skip

_log = logging.getLogger("plismbench.distill")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
HEADS_FILE = "teacher_heads.pt"
#: Version of ``teacher_heads.pt`` (a fingerprint, the step reached and the heads).
HEADS_VERSION = 1
#: What learnt heads depend on, besides K and the head architecture.
_HEAD_OPTIONS = ("teacher", "teacher_overrides", "learn_heads_steps", "seed", "image_size",
                 "batch_size", "lr", "min_lr", "teacher_temp", "student_temp", "clip_grad",
                 "blur_probs", "precision")  # fmt: skip
#: The learnt heads' architecture (see ``learn_heads``).
HEAD_SHAPE = {"hidden": 2048, "bottleneck": [384, 256], "gain": "fixed at 1"}


def warn(text: str) -> None:
    """A warning on stderr, once; also to the log's handlers at INFO (at WARNING, Python's
    last-resort handler would print it a second time when logging is not configured)."""
    _log.info(text)
    print(text, file=sys.stderr, flush=True)


@dataclass
class DistillResult:
    """What a finished run (or a dry run) produced."""

    output_dir: Path
    student_dir: Path
    steps: int
    last: dict[str, Any]
    seconds: float
    images_per_s: float
    dry_run: bool = False
    skipped_tiles: int = 0


def write_config(cfg: DistillConfig, out: Path, notes: list[str] | None = None) -> Path:
    """``RUN/config.yaml``: every resolved option, the concrete schedule and any warnings."""
    import yaml

    data = cfg.resolved()
    if notes:
        data["warnings"] = list(notes)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def heads_fingerprint(cfg: DistillConfig) -> dict[str, Any]:
    """What ``--teacher-heads learn`` heads depend on (JSON-normalised)."""
    data = {k: getattr(cfg, k) for k in _HEAD_OPTIONS}
    data.update(prototypes=cfg.num_prototypes(), head=HEAD_SHAPE, version=HEADS_VERSION)
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def _diff(path: Path, have: dict[str, Any], want: dict[str, Any], fix: str) -> None:
    for key in want:
        if have.get(key) != want[key]:
            raise InputError(f"{path} was written with {key}={have.get(key)!r}, this run has "
                             f"{key}={want[key]!r}; {fix}")  # fmt: skip


def _peek(path: Path, what: str) -> dict[str, Any]:
    """A torch file's small entries, memory-mapped (its tensors are not read)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path} cannot be read as {what}: {first}") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path} cannot be read as {what}: not a mapping")
    return payload


def preflight(cfg: DistillConfig) -> int:
    """Refuse, before anything is written, a run the folder cannot take; its first step.

    A folder that is a file, an existing checkpoint without ``--resume`` (or
    ``--overwrite``), a checkpoint written with other options, and a ``teacher_heads.pt``
    learnt with other options (unless ``--overwrite``: it is then relearnt).
    """
    out = Path(cfg.output_dir)  # type: ignore[arg-type]
    if out.exists() and not out.is_dir():
        raise InputError(f"--out-dir {out} exists and is not a folder")
    start = 0
    ckpt = out / CHECKPOINT_FILE
    if ckpt.exists() and not (cfg.resume or cfg.overwrite):
        raise InputError(f"{ckpt} exists: pass --resume to continue that run, --overwrite to "
                         "start it again, or use a new --out-dir")  # fmt: skip
    if ckpt.exists() and cfg.resume:
        payload = _peek(ckpt, "a distill checkpoint")
        from plismbench.distillation.checkpoint import CHECKPOINT_VERSION

        if payload.get("version") != CHECKPOINT_VERSION:
            raise InputError(f"{ckpt}: unknown checkpoint version {payload.get('version')!r}")
        _diff(ckpt, payload.get("config") or {}, cfg.fingerprint(),
              "resume with the same options or use a new --out-dir")  # fmt: skip
        start = int(payload["step"])
    heads = out / HEADS_FILE
    learn = cfg.teacher_heads == "learn" and cfg.loss == "dino-ibot"
    if learn and heads.exists() and not cfg.overwrite:
        payload = _peek(heads, "learnt teacher heads")
        fix = "pass --overwrite to learn them again, or use a new --out-dir"
        if "fingerprint" not in payload:
            raise InputError(f"{heads} has no fingerprint (an older plismbench wrote it); "
                             f"{fix}")  # fmt: skip
        _diff(heads, payload["fingerprint"], heads_fingerprint(cfg), fix)
    return start


def dry_run(cfg: DistillConfig) -> DistillResult:
    """Check everything a run would, then write only ``RUN/config.yaml``."""
    cfg.check()
    out = Path(cfg.output_dir)  # type: ignore[arg-type]
    if (out / CHECKPOINT_FILE).exists():
        raise InputError(f"{out} holds a run ({CHECKPOINT_FILE}); a dry run would replace "
                         f"its {CONFIG_FILE}: use a new --out-dir")  # fmt: skip
    preflight(dataclasses.replace(cfg, resume=False))
    notes = [w for w in (heads_warning(cfg),) if w]
    for note in notes:
        warn(note)
    write_config(cfg, out, notes)
    return DistillResult(output_dir=out, student_dir=out / "student", steps=cfg.steps, last={},
                         seconds=0.0, images_per_s=0.0, dry_run=True)  # fmt: skip
