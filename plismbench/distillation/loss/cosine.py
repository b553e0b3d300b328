"""Feature regression: cosine distance of adapted student tokens to teacher tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos(student_i, teacher_i)`` over rows (last dimension is features)."""
    s = student.float().reshape(-1, student.shape[-1])
    t = teacher.float().reshape(-1, teacher.shape[-1])
    return (1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-6)).mean()
