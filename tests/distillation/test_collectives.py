"""Collectives run on tensors on the rank's device (NCCL serves only CUDA tensors).

Reproduced on CPU: a one-process ``cpu:gloo`` group, seen as two processes, whose
``all_reduce`` refuses (as NCCL does for CPU tensors) any tensor off the rank's device,
while tensors created without a device land elsewhere (the default device is ``meta``).
A metric tensor built on the default device rather than the rank's then fails the way a
CPU tensor fails under NCCL (today's code: ``torch.tensor([...], dtype=float64)``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as tdist

from plismbench.distillation.build import build
from plismbench.distillation.config import config_from
from plismbench.distillation.step import train_step

TINY = {"teacher_heads": "random", "student": "vit-tiny", "image_size": 28, "prototypes": 64,
        "batch_size": 2, "device": "cpu", "progress": False,
        "teacher_overrides": {"depth": 1}, "student_overrides": {"depth": 1}}  # fmt: skip


@pytest.fixture
def cpu_only_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    store = tdist.FileStore(str(tmp_path / "store"), 1)
    tdist.init_process_group(backend="cpu:gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        tdist.destroy_process_group()


def test_step_collectives_use_the_rank_device(cpu_only_group: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cfg = config_from(teacher="timm:vit_small_patch14_reg4_dinov2", output_dir="unused",
                      steps=2, **TINY)  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    x = torch.rand(4, 3, 28, 28)
    seen: list[torch.device] = []
    real = tdist.all_reduce

    def all_reduce(t: torch.Tensor, *args: object, **kwargs: object) -> object:
        seen.append(t.device)
        if t.device != st.device:  # NCCL: "No backend type associated with device type cpu"
            raise RuntimeError(f"No backend type associated with device type {t.device.type}")
        return real(t, *args, **kwargs)

    monkeypatch.setattr(tdist, "all_reduce", all_reduce)
    monkeypatch.setattr(tdist, "get_world_size", lambda *a, **k: 2)
    torch.set_default_device("meta")
    try:
        record = train_step(st, 0, x)
    finally:
        torch.set_default_device(None)
    assert seen and all(d == torch.device("cpu") for d in seen), seen
    assert record["loss"] > 0


def test_init_distributed_binds_the_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """One process: the rank's device, no group created; CUDA would be set to LOCAL_RANK."""
    from plismbench.utils.distributed import init_distributed

    monkeypatch.setenv("WORLD_SIZE", "1")
    ctx = init_distributed("cpu")
    assert ctx.device == torch.device("cpu") and not ctx.initialised_here
