"""Run logging: ``metrics.jsonl`` (rank 0), optional TensorBoard and Weights & Biases,
and the text of the progress line (img/s, losses, lr, ETA)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from plismbench.errors import InputError
from plismbench.utils.io import atomic_path

__all__ = ["RunLogger", "progress_bar", "progress_text"]


def progress_text(record: dict[str, Any], eta_s: float | None = None) -> str:
    """``distill 12.3 img/s loss 9.12 (dino 4.50 ibot 4.62) lr 1.2e-04 skipped 1 eta 1h02m``.

    The first word is the record's ``phase`` (``heads`` while learning teacher heads).
    """
    text = (f"{record.get('phase', 'distill')} {record.get('img_per_s', 0.0):.1f} img/s "
            f"loss {record['loss']:.3f} (dino {record['loss_dino']:.3f} ibot "
            f"{record['loss_ibot']:.3f}) lr {record['lr']:.2e}")  # fmt: skip
    if record.get("skipped_tiles"):
        text += f" skipped {record['skipped_tiles']}"
    if eta_s is not None:
        hours, rest = divmod(int(eta_s), 3600)
        minutes, seconds = divmod(rest, 60)
        text += f" eta {hours}h{minutes:02d}m" if hours else f" eta {minutes}m{seconds:02d}s"
    return text


@contextlib.contextmanager
def progress_bar(
    enabled: bool, total: int, start: int, phase: str
) -> Iterator[Callable[[str], None]]:
    """A progress bar of ``total`` steps from ``start``; ``advance(text)`` moves it by one."""
    from plismbench.utils.progress import make_progress

    with make_progress(enabled=enabled) as bar:
        task = bar.add_task(phase, total=total, completed=start)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=text)

        yield advance


class RunLogger:
    """``metrics.jsonl`` cut back to ``resume_step`` on resume (the head-learning lines,
    ``"phase": "heads"``, are kept); TensorBoard and wandb mirrors."""

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
        self._rewrite(lambda row: row.get("phase") == "heads"
                      or row.get("step", 1 << 62) < resume_step)  # fmt: skip
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

    def _rewrite(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Keep only the lines of ``metrics.jsonl`` whose record satisfies ``keep``."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                if keep(json.loads(line)):
                    kept.append(line)
        if not kept:
            self.path.unlink()
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(f"{k}\n" for k in kept), encoding="utf-8")

    def restart_heads(self, step: int) -> None:
        """Drop the head-learning lines from ``step`` on (the head phase resumes there)."""
        if not self.enabled:
            return
        self.fh.close()
        self._rewrite(lambda row: row.get("phase") != "heads" or row.get("step", 0) < step)
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (rank 0 only)."""
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        prefix = "heads/" if record.get("phase") == "heads" else ""
        scalars = {prefix + k: v for k, v in record.items()
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
