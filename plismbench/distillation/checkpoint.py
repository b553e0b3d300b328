"""``RUN/checkpoint.pt``: student, EMA, optimiser, scaler, centres, the unreadable tiles met
and the next step."""

from __future__ import annotations

from pathlib import Path

import torch

from plismbench.distillation.build import State
from plismbench.errors import InputError
from plismbench.utils.io import atomic_path

__all__ = ["CHECKPOINT_VERSION", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1


def save_checkpoint(st: State, path: Path, next_step: int) -> None:
    """Write the run's state atomically (rank 0)."""
    payload = {
        "version": CHECKPOINT_VERSION,
        "step": next_step,
        "config": st.cfg.fingerprint(),
        "student": st.student.state_dict(),
        "ema": st.ema.state_dict(),
        "optimiser": st.optimiser.state_dict(),
        "dino_targets": st.dino_targets.state_dict(),
        "ibot_targets": st.ibot_targets.state_dict(),
        "skipped_tiles": dict(st.skipped),
    }
    if st.scaler is not None:
        payload["scaler"] = st.scaler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(st: State, path: Path) -> int:
    """Restore ``path`` into ``st``; the next step. Refuses another run's options."""
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
            f"{k}={want[k]!r}; resume with the same options or use a new --out-dir"
        )
    st.student.load_state_dict(payload["student"])
    st.ema.load_state_dict(payload["ema"])
    st.optimiser.load_state_dict(payload["optimiser"])
    st.dino_targets.load_state_dict(payload["dino_targets"])
    st.ibot_targets.load_state_dict(payload["ibot_targets"])
    st.skipped.clear()
    st.skipped.update({int(k): str(v) for k, v in payload.get("skipped_tiles", {}).items()})
    if st.scaler is not None and "scaler" in payload:
        st.scaler.load_state_dict(payload["scaler"])
    return int(payload["step"])
