"""``--teacher-heads learn``: fit DINO/iBOT heads on the frozen teacher before distilling.

For a teacher released without its heads (the paper's open question). The teacher's
backbone stays frozen; only heads train, DINO-style self-distillation of the heads alone:
a trained head pair sees the teacher's tokens of one view, its EMA the other view (DINO,
cross-view, CLS) and the same view (iBOT, every patch), Sinkhorn-Knopp targets, AdamW with
warmup and cosine decay, EMA momentum 0.994 -> 1. ``--learn-heads-steps`` steps (default
2,000) at the run's batch size; the EMA heads then become the frozen teacher heads of the
distillation. They are saved to ``RUN/teacher_heads.pt`` and reused on resume.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

from plismbench.distillation.build import State, autocast
from plismbench.distillation.centering import make_targets
from plismbench.distillation.heads import ProjectionHead, TeacherHeads
from plismbench.distillation.loss import dino_loss, ibot_loss
from plismbench.distillation.loss.dino import cross_view
from plismbench.distillation.loss.ibot import token_chunk
from plismbench.distillation.schedules import Schedules, scaled_lr
from plismbench.distillation.step import flatten_patches, update_momentum, views
from plismbench.utils import distributed as dist
from plismbench.utils.io import atomic_path

__all__ = ["HEADS_FILE", "learn_heads"]

HEADS_FILE = "teacher_heads.pt"
_log = logging.getLogger("plismbench.distill")


def _fresh_heads(dim: int, k: int, seed: int) -> TeacherHeads:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = TeacherHeads(ProjectionHead(dim, k, bottleneck=384),
                             ProjectionHead(dim, k, bottleneck=256))  # fmt: skip
    return heads.requires_grad_(True)


def _head_step(st: State, trained: TeacherHeads, ema: TeacherHeads, targets: list[Any],
               tokens: torch.Tensor, tau_t: float) -> torch.Tensor:  # fmt: skip
    """The heads' loss on one batch of teacher tokens (2b rows, view 1 then view 2)."""
    cls = tokens[:, 0].float()
    patches = flatten_patches(tokens, st.teacher.num_prefix_tokens).float()
    with torch.no_grad():
        t_cls = ema.dino_head(cls)
        tz_patch = ema.ibot_head.embed(patches)
        tw = ema.ibot_head.prototypes()
    k = tw.shape[0]
    chunk = token_chunk(k)
    d_t = targets[0].prepare(cross_view(t_cls), cls.shape[0], tau_t, cls.shape[0])
    i_t = targets[1].prepare(lambda lo, hi: tz_patch[lo:hi] @ tw.t(), patches.shape[0], tau_t,
                             chunk)  # fmt: skip
    d = dino_loss(trained.dino_head.embed(cls), trained.dino_head.prototypes(), d_t,
                  st.cfg.student_temp)  # fmt: skip
    i = ibot_loss(trained.ibot_head.embed(patches), trained.ibot_head.prototypes(), i_t,
                  st.cfg.student_temp, chunk)  # fmt: skip
    return d.cross_entropy + i.cross_entropy


def learn_heads(st: State, corpus: Any, out: Path) -> TeacherHeads:
    """Fit heads on ``corpus`` through the frozen teacher; install them as ``st.heads``."""
    from plismbench.distillation.corpus import CorpusLoader

    cfg = st.cfg
    path = out / HEADS_FILE
    k = cfg.num_prototypes()
    trained = _fresh_heads(st.teacher.dim, k, cfg.seed + 11).to(st.device)
    if path.is_file():
        trained.load_state_dict(torch.load(path, map_location=st.device, weights_only=True))
        return _install(st, trained)
    ema = copy.deepcopy(trained).requires_grad_(False)
    n = cfg.learn_heads_steps
    sched = Schedules(steps=n, peak_lr=scaled_lr(cfg.lr, cfg.batch_size),
                      warmup_steps=max(1, n // 10), min_lr=cfg.min_lr, teacher_temp_warmup=0,
                      teacher_temp_end=cfg.teacher_temp[1])  # fmt: skip
    opt = torch.optim.AdamW(trained.parameters(), lr=0.0, weight_decay=0.04)
    targets = [make_targets("sinkhorn", k), make_targets("sinkhorn", k)]
    loader = CorpusLoader(corpus, global_batch=cfg.batch_size, seed=cfg.seed + 7,
                          rank=dist.rank(), world=dist.world(), workers=cfg.workers,
                          steps=n)  # fmt: skip
    amp = autocast(st.device, st.precision)
    try:
        for step, tiles in enumerate(loader):
            x = views(st, tiles, [int(p) for p in loader.positions(step)])
            with torch.no_grad(), amp:
                tokens = st.teacher.backbone(st.teacher_norm(x).to(st.teacher_dtype))
            loss = _head_step(st, trained, ema, targets, tokens, sched.teacher_temp(step))
            loss.backward()
            for p in trained.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.world()
            torch.nn.utils.clip_grad_norm_(trained.parameters(), cfg.clip_grad or 3.0)
            for group in opt.param_groups:
                group["lr"] = sched.lr(step)
            opt.step()
            opt.zero_grad(set_to_none=True)
            update_momentum(ema, trained, sched.ema_momentum(step))
            if step % max(1, n // 10) == 0:
                _log.info("learn heads step %d/%d loss %.4f", step, n, float(loss.detach()))
    finally:
        loader.close()
    if dist.rank() == 0:
        with atomic_path(path) as tmp:
            torch.save(ema.state_dict(), tmp)
    return _install(st, ema)


def _install(st: State, heads: TeacherHeads) -> TeacherHeads:
    frozen = TeacherHeads(heads.dino_head, heads.ibot_head).to(st.device)
    st.heads = frozen
    return frozen
