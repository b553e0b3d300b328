"""Per-step schedules: warmup + cosine lr, cosine weight decay, teacher temperature, EMA."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Schedules", "cosine", "scaled_lr"]


def cosine(start: float, end: float, step: int, total: int) -> float:
    """Half-cosine from ``start`` (step 0) to ``end`` (step ``total``), then ``end``."""
    if total <= 0 or step >= total:
        return end
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * step / total))


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Square-root scaling of a base lr given for a batch of 1024."""
    return base_lr * math.sqrt(batch_size / 1024.0)


@dataclass(frozen=True)
class Schedules:
    """Every value that moves with the step, as pure functions of the step."""

    steps: int
    peak_lr: float
    warmup_steps: int
    min_lr: float = 1e-6
    wd_start: float = 0.04
    wd_end: float = 0.4
    teacher_temp_start: float = 0.04
    teacher_temp_end: float = 0.07
    teacher_temp_warmup: int = 0
    ema_start: float = 0.994
    ema_end: float = 1.0
    freeze_last_layer_steps: int = 0

    def lr(self, step: int) -> float:
        """Linear warmup from 0 to ``peak_lr``, then cosine down to ``min_lr``."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        rest = self.steps - self.warmup_steps
        return cosine(self.peak_lr, self.min_lr, step - self.warmup_steps, rest)

    def weight_decay(self, step: int) -> float:
        """Cosine from ``wd_start`` up to ``wd_end`` over the run."""
        return cosine(self.wd_start, self.wd_end, step, self.steps)

    def teacher_temp(self, step: int) -> float:
        """Linear warmup ``teacher_temp_start`` -> ``teacher_temp_end``, then constant."""
        if step >= self.teacher_temp_warmup:
            return self.teacher_temp_end
        frac = step / self.teacher_temp_warmup
        return self.teacher_temp_start + frac * (self.teacher_temp_end - self.teacher_temp_start)

    def ema_momentum(self, step: int) -> float:
        """Cosine from ``ema_start`` to ``ema_end`` (equal values: constant)."""
        return cosine(self.ema_start, self.ema_end, step, self.steps)

    def last_layer_frozen(self, step: int) -> bool:
        """True while the prototypes of the student heads stay fixed."""
        return step < self.freeze_last_layer_steps
