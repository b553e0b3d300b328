"""The iBOT loss on patch tokens, without masking: every patch of both views."""

from __future__ import annotations

import torch

from plismbench.distillation.centering import TargetFn
from plismbench.distillation.loss.stream import LossParts, streamed_cross_entropy


def ibot_loss(
    student_z: torch.Tensor,
    student_w: torch.Tensor,
    targets: TargetFn,
    student_temp: float = 0.1,
    chunk: int | None = None,
) -> LossParts:
    """``L_ibot = 1/(2P) sum_p sum_j H(t_jp, s_jp)``, averaged over the batch.

    ``student_z`` is (2 * B * P, d): every patch token of both views; ``targets`` the
    teacher's targets for the same tokens (same view, same position). Streamed in
    chunks of ``chunk`` tokens.
    """
    return streamed_cross_entropy(student_z, student_w, targets, student_temp, chunk)


def token_chunk(prototypes: int, budget: int = 1 << 26) -> int:
    """Tokens per chunk so that one chunk's (tokens x K) fp32 logits stay near ``budget``."""
    return max(64, budget // max(prototypes, 1))
