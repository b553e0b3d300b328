"""Run logging: ``metrics.jsonl`` (rank 0), optional TensorBoard and Weights & Biases,
and the text of the progress line (img/s, losses, lr, ETA)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from plismbench.errors import InputError
from plismbench.utils.io import atomic_path

__all__ = ["RunLogger", "progress_text"]


def progress_text(record: dict[str, Any], eta_s: float | None = None) -> str:
    """``distill 12.3 img/s loss 9.12 (dino 4.50 ibot 4.62) lr 1.2e-04 eta 1h02m``."""
    text = (f"distill {record.get('img_per_s', 0.0):.1f} img/s loss {record['loss']:.3f} "
            f"(dino {record['loss_dino']:.3f} ibot {record['loss_ibot']:.3f}) "
            f"lr {record['lr']:.2e}")  # fmt: skip
    if eta_s is not None:
        hours, rest = divmod(int(eta_s), 3600)
        minutes, seconds = divmod(rest, 60)
        text += f" eta {hours}h{minutes:02d}m" if hours else f" eta {minutes}m{seconds:02d}s"
    return text


class RunLogger:
    """``metrics.jsonl`` cut back to ``resume_step`` on resume; TensorBoard and wandb mirrors."""

    def __init__(
        self,
        out: Path,
        resume_step: int,
        *,
        enabled: bool,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        config: dict[str, Any] | None = None,
    ):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.writer: Any = None
        self.wandb: Any = None
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
        if wandb_project:
            try:
                import wandb
            except ImportError:
                raise InputError("--wandb needs the wandb package: pip install wandb") from None
            self.wandb = wandb.init(project=wandb_project, name=out.name, config=config,
                                    dir=str(out), resume="allow")  # fmt: skip
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (rank 0 only)."""
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        scalars = {k: v for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float))}  # fmt: skip
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, record["step"])
        if self.wandb is not None:
            self.wandb.log(scalars, step=record["step"])

    def close(self) -> None:
        """Flush and close every sink."""
        if self.enabled:
            self.fh.close()
            if self.writer is not None:
                self.writer.close()
            if self.wandb is not None:
                self.wandb.finish()
