"""A step's logged metrics are the mean over ranks (mutation-checked: the division by the
world size dropped survived, since the suite's only multi-rank step asserted loss > 0)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from plismbench.distillation import step as step_mod
from plismbench.distillation.build import build
from plismbench.distillation.config import config_from


def test_metrics_of_two_identical_ranks_are_one_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config_from(teacher="timm:vit_small_patch14_reg4_dinov2", output_dir="unused",
                      teacher_heads="random", student="vit-tiny", image_size=28, prototypes=8,
                      batch_size=2, device="cpu", progress=False, steps=2,
                      teacher_overrides={"depth": 1}, student_overrides={"depth": 1})  # fmt: skip
    st = build(cfg, torch.device("cpu"))
    sent: list[float] = []

    def all_reduce_values(values, device=None, op="sum"):  # type: ignore[no-untyped-def]
        sent.extend(values)
        return [2.0 * v for v in values]  # a second rank with the same numbers

    fake = SimpleNamespace(all_reduce_values=all_reduce_values, world=lambda: 2)
    monkeypatch.setattr(step_mod, "dist", fake)
    record = step_mod.train_step(st, 0, torch.rand(4, 3, 28, 28))
    assert sent and record["loss"] == pytest.approx(sent[0])
    assert record["loss_dino"] == pytest.approx(sent[1])
