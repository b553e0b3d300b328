"""Losses, centring and Sinkhorn-Knopp against brute-force formulas (golden values)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from plismbench.distillation.centering import EMACentre, SinkhornKnopp, entropy, marginal_entropy
from plismbench.distillation.loss import cosine_loss, dino_loss, ibot_loss
from plismbench.distillation.loss.dino import cross_view

TAU_S = 0.1


def _ce(q: torch.Tensor, s_logits: torch.Tensor) -> torch.Tensor:
    """Row-wise H(q, softmax(s / tau_s)) in float64."""
    return -(q.double() * torch.log_softmax(s_logits.double() / TAU_S, dim=-1)).sum(-1)


def _data(b: int = 6, k: int = 40, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(2 * b, d, generator=g), dim=-1)
    w = torch.randn(k, d, generator=g)
    t = torch.randn(2 * b, k, generator=g) * 3
    return z, w, t


def test_dino_loss_is_cross_view_average() -> None:
    b, tau = 6, 0.5
    z, w, t = _data(b)
    centre = EMACentre(t.shape[1])
    centre.centre.normal_()
    c = centre.centre.clone()
    parts = dino_loss(z, w, centre.prepare(cross_view(t), 2 * b, tau, 2 * b), TAU_S)
    q = torch.softmax((t.double() - c.double()) / tau, dim=-1)
    s = z.double() @ w.double().T
    brute = 0.5 * (_ce(q[:b], s[b:]).mean() + _ce(q[b:], s[:b]).mean())
    assert math.isclose(float(parts.cross_entropy), float(brute), rel_tol=1e-5)
    ent = float(entropy(q).mean())
    assert math.isclose(float(parts.teacher_entropy), ent, rel_tol=1e-5, abs_tol=1e-7)
    assert math.isclose(float(parts.kl), float(brute) - ent, rel_tol=1e-4, abs_tol=1e-6)


def test_ibot_loss_chunked_matches_brute_force_value_and_gradient() -> None:
    n, tau = 2 * 3 * 7, 0.04  # 2 views x 3 images x 7 patches
    g = torch.Generator().manual_seed(1)
    z = F.normalize(torch.randn(n, 8, generator=g), dim=-1).requires_grad_(True)
    w = torch.randn(30, 8, generator=g).requires_grad_(True)
    t = torch.randn(n, 30, generator=g) * 2
    sk = SinkhornKnopp(3)
    parts = ibot_loss(z, w, sk.prepare(lambda lo, hi: t[lo:hi], n, tau, 5), TAU_S, chunk=5)
    parts.cross_entropy.backward()
    gz, gw = z.grad.clone(), w.grad.clone()  # type: ignore[union-attr]
    z.grad = w.grad = None
    q = _sinkhorn_brute(t.double(), tau)
    brute = _ce(q, z.double() @ w.double().T).mean()
    assert math.isclose(float(parts.cross_entropy.detach()), float(brute.detach()), rel_tol=1e-5)
    brute.backward()
    torch.testing.assert_close(gz, z.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-6)


def test_swapping_views_changes_dino_not_ibot() -> None:
    """L_dino pairs each student view with the *other* teacher view; L_ibot stays in-view.

    Presenting the student's CLS views in the other order turns the cross-view loss into
    the same-view one (a different value), while the patch loss, which pairs tokens of
    the same view, is untouched; swapping both models' views together changes nothing.
    """
    b, tau = 5, 0.05
    z, w, t = _data(b, seed=2)
    zp, wp, tp = _data(b * 4, seed=3)

    def losses(z_cls, t_cls, z_patch, t_patch):
        d = dino_loss(z_cls, w, EMACentre(40).prepare(cross_view(t_cls), 2 * b, tau, 99), TAU_S)
        i = ibot_loss(z_patch, wp, EMACentre(40).prepare(lambda lo, hi: t_patch[lo:hi],
                                                       8 * b, tau, 7), TAU_S, chunk=7)  # fmt: skip
        return float(d.cross_entropy), float(i.cross_entropy)

    def swap(x: torch.Tensor) -> torch.Tensor:
        h = x.shape[0] // 2
        return torch.cat([x[h:], x[:h]])

    ref_d, ref_i = losses(z, t, zp, tp)
    d_swapped, i_same = losses(swap(z), t, zp, tp)
    assert abs(d_swapped - ref_d) > 1e-3
    assert i_same == ref_i
    q = torch.softmax(t.double() / tau, -1)
    s = z.double() @ w.double().T
    same_view = 0.5 * (_ce(q[:b], s[:b]).mean() + _ce(q[b:], s[b:]).mean())
    assert math.isclose(d_swapped, float(same_view), rel_tol=1e-5)
    both_d, both_i = losses(swap(z), swap(t), swap(zp), swap(tp))
    assert math.isclose(both_d, ref_d, rel_tol=1e-6) and math.isclose(both_i, ref_i, rel_tol=1e-6)


def _sinkhorn_brute(logits: torch.Tensor, tau: float, iters: int = 3) -> torch.Tensor:
    """The exp-domain algorithm of DINOv2, in float64 (fine for moderate logits)."""
    q = torch.exp(logits / tau).T
    n, k = q.shape[1], q.shape[0]
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / n
    return (q * n).T


def test_sinkhorn_matches_exp_domain_and_survives_sharp_logits() -> None:
    g = torch.Generator().manual_seed(4)
    t = torch.randn(50, 16, generator=g)
    sk = SinkhornKnopp(3)
    for chunk in (50, 7):
        got = sk.prepare(lambda lo, hi: t[lo:hi], 50, 0.5, chunk)(0, 50)
        torch.testing.assert_close(got.double(), _sinkhorn_brute(t.double(), 0.5), atol=1e-6,
                                   rtol=1e-5)  # fmt: skip
    sharp = t * 100.0  # logits / 0.04 ~ 2500: exp overflows even in float64
    assert torch.isnan(_sinkhorn_brute(sharp.double(), 0.04)).any()
    got = sk.prepare(lambda lo, hi: sharp[lo:hi], 50, 0.04, 13)(0, 50)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.sum(-1), torch.ones(50))


def test_centre_update_is_ema_of_batch_mean() -> None:
    t = torch.randn(10, 6)
    c = EMACentre(6, momentum=0.9)
    c.centre.fill_(1.0)
    got = c.prepare(lambda lo, hi: t[lo:hi], 10, 0.07, 3)
    for lo in range(0, 10, 3):
        got(lo, min(lo + 3, 10))
    c.update()
    torch.testing.assert_close(c.centre, 0.9 * torch.ones(1, 6) + 0.1 * t.mean(0, keepdim=True))


def test_centring_and_sinkhorn_prevent_collapse() -> None:
    """A teacher whose logits favour one prototype for every image: the marginal of its
    targets has near-zero entropy; centring (over steps) and Sinkhorn (at once) raise it
    toward ln K."""
    k, n, tau = 64, 256, 0.04
    g = torch.Generator().manual_seed(5)
    bias = torch.zeros(k)
    bias[0] = 2.0
    ln_k = math.log(k)

    def batch() -> torch.Tensor:
        return bias + 0.3 * torch.randn(n, k, generator=g)

    plain = marginal_entropy(torch.softmax(batch() / tau, -1))
    assert plain < 0.2 * ln_k
    centre = EMACentre(k, momentum=0.9)
    history = []
    for _ in range(60):
        x = batch()
        targets = centre.prepare(lambda lo, hi, x=x: x[lo:hi], n, tau, n)(0, n)
        history.append(float(marginal_entropy(targets)))
        centre.update()
    assert history[0] < 0.2 * ln_k and history[-1] > 0.9 * ln_k
    x = batch()
    sk = SinkhornKnopp(3).prepare(lambda lo, hi: x[lo:hi], n, tau, n)(0, n)
    assert float(marginal_entropy(sk)) > 0.95 * ln_k


def test_cosine_loss_golden() -> None:
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    # cosines 1, -1, 0 -> distances 0, 2, 1
    assert math.isclose(float(cosine_loss(s, t)), 1.0, rel_tol=1e-6)
    assert math.isclose(float(cosine_loss(s[None], t[None])), 1.0, rel_tol=1e-6)
