"""The teacher centre folds in the batch mean over every rank (mutation-checked: dropping
the all-reduce left a per-rank centre, which a one-process suite cannot see)."""

from __future__ import annotations

import pytest
import torch

from plismbench.distillation import centering


def test_centre_update_uses_the_mean_over_all_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    local, other = torch.randn(6, 5), torch.randn(10, 5) + 3.0
    calls: list[int] = []

    def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """A second rank holding ``other`` adds its logit sums and row count."""
        calls.append(1)
        if op == "sum" and t.numel() == 6:
            t += torch.cat([other.sum(0), torch.tensor([float(len(other))])])
        return t

    monkeypatch.setattr(centering, "all_reduce", all_reduce)
    centre = centering.EMACentre(5, momentum=0.75)
    centre.centre.fill_(2.0)
    targets = centre.prepare(lambda lo, hi: local[lo:hi], len(local), tau=0.1, chunk=4)
    for lo in range(0, 6, 4):
        targets(lo, min(lo + 4, 6))
    centre.update()
    both = torch.cat([local, other]).mean(0)
    assert calls
    assert torch.allclose(centre.centre[0], 0.75 * 2.0 + 0.25 * both, atol=1e-5)
