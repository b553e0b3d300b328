"""Teacher targets that do not collapse: an EMA centre or log-domain Sinkhorn-Knopp.

Both turn teacher logits into target distributions over the K prototypes. Logits come
from a callable ``logits(lo, hi)`` over rows so that 131k-prototype targets are never
held for every token at once; all arithmetic is fp32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from plismbench.utils.distributed import all_reduce, world

__all__ = [
    "EMACentre",
    "SinkhornKnopp",
    "TargetFn",
    "entropy",
    "make_targets",
    "marginal_entropy",
]

#: ``logits(lo, hi)`` -> fp32 (hi - lo, K) teacher logits of rows lo..hi.
LogitsFn = Callable[[int, int], torch.Tensor]
#: ``targets(lo, hi, record=True)`` -> fp32 (hi - lo, K) target probabilities; a pure
#: recomputation (the backward pass of a checkpointed chunk) passes ``record=False``.
TargetFn = Callable[..., torch.Tensor]


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, max(1, chunk))]


class EMACentre(nn.Module):
    """``softmax((logits - c) / tau)`` with ``c`` an EMA (``momentum``) of batch-mean logits.

    The centre used for a step is the one from before it; `update()` folds in the
    step's all-reduced batch mean afterwards (DINO's order).
    """

    centre: torch.Tensor

    def __init__(self, prototypes: int, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("centre", torch.zeros(1, prototypes))
        self._sum: torch.Tensor | None = None
        self._count = 0

    def prepare(self, logits: LogitsFn, n: int, tau: float, chunk: int) -> TargetFn:
        """A target function for ``n`` rows; sums the logits it sees while ``record``.

        Micro-batches of one step (gradient accumulation) add to the same sum, folded in
        once by `update()`.
        """
        if self._sum is None:
            self._sum = torch.zeros(self.centre.shape[1], device=self.centre.device)
            self._count = 0
        centre = self.centre.clone()

        def targets(lo: int, hi: int, record: bool = True) -> torch.Tensor:
            x = logits(lo, hi).float()
            if record:
                assert self._sum is not None
                self._sum += x.sum(0)
                self._count += hi - lo
            return torch.softmax((x - centre) / tau, dim=-1)

        return targets

    @torch.no_grad()
    def update(self) -> None:
        """Fold the step's batch mean (over every rank) into the centre."""
        if self._sum is None:
            return
        stats = torch.cat([self._sum, self._sum.new_tensor([float(self._count)])])
        all_reduce(stats)
        mean = stats[:-1] / stats[-1].clamp_min(1.0)
        self.centre.mul_(self.momentum).add_(mean[None], alpha=1 - self.momentum)
        self._sum = None


class SinkhornKnopp(nn.Module):
    """Sinkhorn-Knopp in the log domain: equipartition over prototypes in ``iterations``.

    With ``L = logits / tau`` the balanced plan is ``exp(L + a_k + b_i)``; only the
    prototype potentials ``a`` matter for the targets ``softmax(L + a)`` (rows sum
    to one after the last sample normalisation). Sums over samples span all ranks.
    """

    def __init__(self, iterations: int = 3):
        super().__init__()
        self.iterations = iterations

    @torch.no_grad()
    def potentials(self, logits: LogitsFn, n: int, tau: float, chunk: int) -> torch.Tensor:
        """The prototype potentials ``a`` (K,) after ``iterations`` rounds."""
        a: torch.Tensor | None = None
        for _ in range(self.iterations):
            acc: torch.Tensor | None = None
            for lo, hi in _chunks(n, chunk):
                x = logits(lo, hi).float() / tau
                if a is not None:  # sample normalisation with the current potentials
                    x = x - torch.logsumexp(x + a, dim=1, keepdim=True)
                part = torch.logsumexp(x, dim=0)
                acc = part if acc is None else torch.logaddexp(acc, part)
            assert acc is not None
            a = -logsumexp_over_ranks(acc)
        assert a is not None
        return a

    def prepare(self, logits: LogitsFn, n: int, tau: float, chunk: int) -> TargetFn:
        """A target function for this step's ``n`` rows (computes the potentials now)."""
        a = self.potentials(logits, n, tau, chunk)

        def targets(lo: int, hi: int, record: bool = True) -> torch.Tensor:
            return torch.softmax(logits(lo, hi).float() / tau + a, dim=-1)

        return targets

    def update(self) -> None:
        """Nothing to carry over between steps."""


def logsumexp_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``log(sum_r exp(x_r))`` elementwise over ranks, computed stably."""
    if world() == 1:
        return x
    peak = all_reduce(x.detach().clone(), "max")
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = all_reduce(torch.exp(x - peak))
    return peak + torch.log(total)


def make_targets(kind: str, prototypes: int, momentum: float = 0.9) -> EMACentre | SinkhornKnopp:
    """``centre`` or ``sinkhorn``."""
    if kind == "centre":
        return EMACentre(prototypes, momentum)
    if kind == "sinkhorn":
        return SinkhornKnopp(3)
    raise ValueError(f"unknown centring {kind!r} (centre or sinkhorn)")


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy (nats) of probabilities ``p`` along ``dim``."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(dim)


def marginal_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of the batch-mean target distribution; ``ln K`` when all prototypes are used."""
    return entropy(p.mean(0))
