"""Cross-entropy of student prototypes against teacher targets, streamed over rows.

``H(t, s) = -sum_k t_k log softmax(s / tau_s)_k`` for every row, computed in chunks of
rows so that (rows x K) logits exist for one chunk at a time. With gradients each chunk
is recomputed in the backward pass (activation checkpointing), its teacher targets
included: a chunk's targets live only while that chunk is computed, never from the
forward pass until the backward one (at K = 131,072 that would be 256 MiB per image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from plismbench.distillation.centering import TargetFn, entropy


@dataclass
class LossParts:
    """Mean cross-entropy (differentiable) and the targets' mean entropy (detached)."""

    cross_entropy: torch.Tensor
    teacher_entropy: torch.Tensor

    @property
    def kl(self) -> torch.Tensor:
        """Cross-entropy minus the targets' entropy: the part the student can remove."""
        return self.cross_entropy.detach() - self.teacher_entropy


def _chunk_ce(z: torch.Tensor, w: torch.Tensor, t: torch.Tensor, temp: float) -> torch.Tensor:
    # bf16 student bottlenecks (autocast) meet fp32 prototypes: multiply in z's dtype,
    # softmax in fp32
    logp = torch.log_softmax((z @ w.t().to(z.dtype)).float() / temp, dim=-1)
    return -(t * logp).sum()


class _Recomputed:
    """A checkpointed chunk: the forward uses the targets at hand and lets them go, the
    backward's recomputation asks ``targets`` again (without recording statistics)."""

    def __init__(self, targets: TargetFn, lo: int, hi: int, t: torch.Tensor, temp: float):
        self.targets, self.lo, self.hi, self.temp = targets, lo, hi, temp
        self.held: list[torch.Tensor] = [t]

    def __call__(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.held:
            t = self.held.pop()
        else:
            with torch.no_grad():
                t = self.targets(self.lo, self.hi, record=False)
        return _chunk_ce(z, w, t, self.temp)


def streamed_cross_entropy(
    student_z: torch.Tensor,
    student_w: torch.Tensor,
    targets: TargetFn,
    student_temp: float = 0.1,
    chunk: int | None = None,
) -> LossParts:
    """Mean over rows of ``H(targets(row), softmax(student_z @ student_w.T / temp))``.

    ``student_z`` (N, d) are normalised bottlenecks, ``student_w`` (K, d) the prototypes,
    ``targets(lo, hi)`` the teacher's fp32 target rows aligned with ``student_z``.
    """
    n = student_z.shape[0]
    step = n if chunk is None else max(1, chunk)
    total = student_z.new_zeros((), dtype=torch.float32)
    ent = student_z.new_zeros((), dtype=torch.float32)
    grad = torch.is_grad_enabled() and (student_z.requires_grad or student_w.requires_grad)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        with torch.no_grad():
            t = targets(lo, hi)
            ent += entropy(t).sum()
        if grad and step < n:
            part = checkpoint(_Recomputed(targets, lo, hi, t, student_temp), student_z[lo:hi],
                              student_w, use_reentrant=False)  # fmt: skip
        else:
            part = _chunk_ce(student_z[lo:hi], student_w, t, student_temp)
        del t
        total = total + part
    return LossParts(total / max(n, 1), ent / max(n, 1))
