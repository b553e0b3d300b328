"""Tiny helpers over ``torch.distributed`` that are no-ops in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce ``x`` in place (``sum`` or ``max``) and return it."""
    if world() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return x


def logsumexp_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """``log(sum_r exp(x_r))`` elementwise over ranks, computed stably."""
    if world() == 1:
        return x
    peak = all_reduce(x.detach().clone(), "max")
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = all_reduce(torch.exp(x - peak))
    return peak + torch.log(total)
