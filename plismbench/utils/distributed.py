"""The one torchrun bootstrap shared by extract, evaluate and distill.

Every helper is a no-op in a single process. Collectives always run on tensors that
live on the process group's device: NCCL serves only CUDA tensors, gloo CPU ones, so
a scalar reduced "on the CPU" under NCCL would crash at the first step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from plismbench.utils.device import resolve_device
from plismbench.utils.ranks import env_ranks

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Resolve this rank's device and join torchrun's process group when there is one.

    On CUDA the rank's GPU (``LOCAL_RANK``) becomes the current device and the group
    uses NCCL; otherwise gloo.
    """
    _, world, local = env_ranks()
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistContext(device=dev)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        here = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, here)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def world() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def collective_device() -> torch.device:
    """The device whose tensors the current process group serves."""
    if world() > 1 and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if world() > 1:
        dist.barrier()


def all_reduce(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce ``x`` in place (``sum`` or ``max``) and return it."""
    if world() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return x


def all_reduce_values(
    values: Sequence[float], device: torch.device | None = None, op: str = "sum"
) -> list[float]:
    """Reduce Python numbers over ranks through a tensor on the group's device."""
    if world() == 1:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=device or collective_device())
    return [float(v) for v in all_reduce(t, op).cpu().tolist()]


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank."""
    if world() == 1:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]  # type: ignore[no-any-return]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order."""
    if world() == 1:
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from ``rank``."""
    return list(items[rank::world])
