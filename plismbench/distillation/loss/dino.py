"""The DINO loss on CLS tokens: each view's student against the other view's teacher."""

from __future__ import annotations

import torch

from plismbench.distillation.centering import LogitsFn, TargetFn
from plismbench.distillation.loss.stream import LossParts, streamed_cross_entropy


def swap_views(x: torch.Tensor) -> torch.Tensor:
    """Rows ordered (view 1, view 2) become (view 2, view 1)."""
    half = x.shape[0] // 2
    return torch.cat([x[half:], x[:half]])


def dino_loss(
    student_z: torch.Tensor,
    student_w: torch.Tensor,
    targets: TargetFn,
    student_temp: float = 0.1,
) -> LossParts:
    """``L_dino = (H(t1, s2) + H(t2, s1)) / 2``, averaged over the batch.

    ``student_z`` is (2B, d) with view-1 rows first; ``targets(lo, hi)`` must give the
    teacher targets of the *other* view for those rows (see `cross_view()`).
    """
    return streamed_cross_entropy(student_z, student_w, targets, student_temp)


def cross_view(logits: torch.Tensor) -> LogitsFn:
    """Teacher logits rows (view 1, view 2) served in (view 2, view 1) order."""
    swapped = swap_views(logits)
    return lambda lo, hi: swapped[lo:hi]
