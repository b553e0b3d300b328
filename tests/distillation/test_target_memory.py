"""The iBOT targets are not held from the forward pass until the backward one.

Every target chunk a loss asks for is tracked by a weak reference; after the forward pass
at most one may still be alive (the checkpointed chunks recompute theirs in backward).
Before the fix, ``checkpoint()`` saved each chunk's (rows x K) targets as an input: all of
them lived until backward (256 MiB per image at K = 131,072).
"""

from __future__ import annotations

import gc
import math
import weakref

import torch
import torch.nn.functional as F

from plismbench.distillation.centering import EMACentre, SinkhornKnopp
from plismbench.distillation.loss import ibot_loss


def _tracked(targets):  # type: ignore[no-untyped-def]
    made: list[weakref.ref[torch.Tensor]] = []

    def wrapped(lo: int, hi: int, record: bool = True) -> torch.Tensor:
        t = targets(lo, hi) if record else targets(lo, hi, record=False)
        made.append(weakref.ref(t))
        return t

    return wrapped, made


def _alive(made: list[weakref.ref[torch.Tensor]]) -> int:
    gc.collect()
    return sum(r() is not None for r in made)


def test_live_target_chunks_after_forward_are_bounded() -> None:
    n, k, d, chunk = 2 * 2 * 16, 50, 8, 8  # 2 views x 2 images x 16 patches, 8 chunks
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_(True)
    w = torch.randn(k, d, generator=g).requires_grad_(True)
    logits = torch.randn(n, k, generator=g)
    for kind in (SinkhornKnopp(3), EMACentre(k)):
        targets, made = _tracked(kind.prepare(lambda lo, hi: logits[lo:hi], n, 0.05, chunk))
        parts = ibot_loss(z, w, targets, 0.1, chunk=chunk)
        assert len(made) == n // chunk
        assert _alive(made) <= 1, f"{_alive(made)} of {len(made)} target chunks held"
        parts.cross_entropy.backward()
        # the backward recomputed each chunk's targets (and let them go)
        assert len(made) == 2 * (n // chunk) and _alive(made) == 0


def test_recomputed_targets_give_the_same_gradient_and_centre_statistics() -> None:
    n, k, d = 24, 30, 8
    g = torch.Generator().manual_seed(1)
    z0 = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    w0 = torch.randn(k, d, generator=g)
    logits = torch.randn(n, k, generator=g) * 2
    grads, centres = [], []
    for chunk in (n, 5):  # one chunk (no checkpoint) vs checkpointed chunks
        z, w = z0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        centre = EMACentre(k)
        centre.centre.normal_(generator=torch.Generator().manual_seed(2))
        parts = ibot_loss(z, w, centre.prepare(lambda lo, hi: logits[lo:hi], n, 0.07, chunk),
                          0.1, chunk=chunk)  # fmt: skip
        parts.cross_entropy.backward()
        centre.update()
        grads.append((z.grad, w.grad))
        centres.append(centre.centre.clone())
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)
    # recomputation in backward does not count the logits twice in the centre
    torch.testing.assert_close(centres[0], centres[1])
    assert not math.isnan(float(centres[0].sum()))
