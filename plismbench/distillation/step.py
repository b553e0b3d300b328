"""One optimisation step: views, teacher targets, student losses, backward, AdamW, EMA.

``loss = L_dino + L_ibot`` (or the cosine variant) on each micro-batch (gradient
accumulation), prototypes frozen early on, each submodule clipped, AdamW with scheduled
lr and weight decay (through a GradScaler in fp16), then the centres and the EMA.
Metrics are averaged over micro-batches and ranks through a tensor on the rank's device.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from plismbench.distillation.augment import draw_params, make_views
from plismbench.distillation.build import State, autocast
from plismbench.distillation.loss import cosine_loss, dino_loss, ibot_loss
from plismbench.distillation.loss.dino import cross_view
from plismbench.distillation.loss.ibot import token_chunk
from plismbench.utils import distributed as dist

__all__ = ["METRIC_KEYS", "flatten_patches", "losses", "train_step", "update_momentum", "views"]

#: Keys every line of ``metrics.jsonl`` has.
METRIC_KEYS = ("step", "loss", "loss_dino", "loss_ibot", "kl_dino", "kl_ibot", "lr",
               "teacher_entropy")  # fmt: skip


def update_momentum(ema: nn.Module, model: nn.Module, m: float) -> None:
    """``ema <- m * ema + (1 - m) * model`` for every parameter (no grad)."""
    with torch.no_grad():
        e: list[torch.Tensor] = list(ema.parameters())
        s: list[torch.Tensor] = [p.detach() for p in model.parameters()]
        torch._foreach_mul_(e, m)
        torch._foreach_add_(e, s, alpha=1.0 - m)


def flatten_patches(tokens: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(B, prefix + P, D) tokens -> (B * P, D) patch rows, row ``b * P + p``."""
    patches = tokens[:, num_prefix_tokens:]
    return patches.reshape(-1, patches.shape[-1])


def views(st: State, tiles: list[np.ndarray], positions: list[int]) -> torch.Tensor:
    """(2b, 3, S, S) floats in [0, 1]: view 1 of every sample, then view 2."""
    on_device = [torch.from_numpy(np.ascontiguousarray(t)).to(st.device) for t in tiles]
    out = []
    for view in (0, 1):
        params = [
            draw_params(st.cfg.seed, p, view, t.shape[:2], st.augment)  # type: ignore[arg-type]
            for p, t in zip(positions, tiles, strict=True)
        ]
        out.append(make_views(on_device, params, st.augment))
    return torch.cat(out)


def _teacher_tokens(st: State, x: torch.Tensor) -> torch.Tensor:
    amp = autocast(st.device, st.precision)
    with torch.no_grad(), amp:
        return st.teacher.backbone(st.teacher_norm(x).to(st.teacher_dtype))


def losses(st: State, step: int, x: torch.Tensor) -> dict[str, Any]:
    """Forward pass of one micro-batch: ``loss`` (differentiable) and detached parts."""
    cfg = st.cfg
    tau_t = st.sched.teacher_temp(step)
    amp = autocast(st.device, st.precision)
    t_tokens = _teacher_tokens(st, x)
    t_cls = t_tokens[:, 0]
    with amp:
        out = st.model(st.student_norm(x))
    if cfg.loss == "cosine":
        t_patch = t_tokens[:, st.teacher.num_prefix_tokens :]
        l_dino, l_ibot = cosine_loss(out[0], t_cls), cosine_loss(out[1], t_patch)
        return {"loss": l_dino + l_ibot, "loss_dino": l_dino.detach(),
                "loss_ibot": l_ibot.detach(), "kl_dino": l_dino.detach(),
                "kl_ibot": l_ibot.detach(), "teacher_entropy": float("nan")}  # fmt: skip
    assert st.heads is not None
    z_cls, z_patch, w_dino, w_ibot = out
    with torch.no_grad(), amp:
        tz_cls = st.heads.dino_head.embed(t_cls.float())
        tz_patch = st.heads.ibot_head.embed(
            flatten_patches(t_tokens, st.teacher.num_prefix_tokens).float()
        )
        tw_dino = st.heads.dino_head.prototypes()
        tw_ibot = st.heads.ibot_head.prototypes()
        t_logits_cls = (tz_cls @ tw_dino.t()).float()
    del t_tokens

    def ibot_logits(lo: int, hi: int) -> torch.Tensor:
        with torch.no_grad(), amp:
            return (tz_patch[lo:hi] @ tw_ibot.t()).float()

    chunk = cfg.ibot_chunk or token_chunk(tw_ibot.shape[0])
    n_cls = t_logits_cls.shape[0]
    dino_t = st.dino_targets.prepare(cross_view(t_logits_cls), n_cls, tau_t, n_cls)
    ibot_t = st.ibot_targets.prepare(ibot_logits, tz_patch.shape[0], tau_t, chunk)
    d = dino_loss(z_cls, w_dino, dino_t, cfg.student_temp)
    i = ibot_loss(z_patch, w_ibot, ibot_t, cfg.student_temp, chunk)
    return {"loss": d.cross_entropy + i.cross_entropy, "loss_dino": d.cross_entropy.detach(),
            "loss_ibot": i.cross_entropy.detach(), "kl_dino": d.kl, "kl_ibot": i.kl,
            "teacher_entropy": float(d.teacher_entropy)}  # fmt: skip


def _optimise(st: State, step: int) -> tuple[float, float]:
    """Freeze, unscale, clip, AdamW with the step's lr and weight decay; (lr, wd)."""
    from plismbench.distillation.optim import apply_schedules

    if st.sched.last_layer_frozen(step):
        for name, p in st.student.named_parameters():
            if ".last_layer." in name:
                p.grad = None
    if st.scaler is not None:
        st.scaler.unscale_(st.optimiser)
    if st.cfg.clip_grad > 0:
        for module in st.student.submodules().values():
            params = [p for p in module.parameters() if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, st.cfg.clip_grad)
    lr, wd = st.sched.lr(step), st.sched.weight_decay(step)
    apply_schedules(st.optimiser, lr, wd)
    if st.scaler is not None:
        st.scaler.step(st.optimiser)
        st.scaler.update()
    else:
        st.optimiser.step()
    st.optimiser.zero_grad(set_to_none=True)
    return lr, wd


def train_step(st: State, step: int, x: torch.Tensor) -> dict[str, Any]:
    """One optimisation step on this rank's views ``x`` (view 1 rows, then view 2 rows)."""
    accum = st.cfg.grad_accum
    b = x.shape[0] // 2
    if b % accum:
        from plismbench.errors import InputError

        raise InputError(f"{b} images per process do not split into --grad-accum {accum}")
    m = b // accum
    keys = ("loss", "loss_dino", "loss_ibot", "kl_dino", "kl_ibot", "teacher_entropy")
    sums = dict.fromkeys(keys, 0.0)
    for j in range(accum):
        rows = torch.cat([x[j * m : (j + 1) * m], x[b + j * m : b + (j + 1) * m]])
        last = j == accum - 1
        no_sync = getattr(st.model, "no_sync", None)
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            parts = losses(st, step, rows)
            loss = parts["loss"] / accum
            (st.scaler.scale(loss) if st.scaler is not None else loss).backward()
        for k in keys:
            value = parts[k]
            sums[k] += float(value.detach() if isinstance(value, torch.Tensor) else value) / accum
        del parts, loss
    lr, wd = _optimise(st, step)
    st.dino_targets.update()
    st.ibot_targets.update()
    update_momentum(st.ema, st.student, st.sched.ema_momentum(step))
    reduced = dist.all_reduce_values([sums[k] for k in keys], st.device)
    values = dict(zip(keys, (v / dist.world() for v in reduced), strict=True))
    ent = values["teacher_entropy"]
    return {
        "step": step,
        **{k: values[k] for k in keys if k != "teacher_entropy"},
        "lr": lr,
        "teacher_entropy": ent if math.isfinite(ent) else None,
        "teacher_temp": st.sched.teacher_temp(step),
        "weight_decay": wd,
        "ema_momentum": st.sched.ema_momentum(step),
    }
