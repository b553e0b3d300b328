"""``--teacher-heads learn``: fit DINO/iBOT heads on the frozen teacher before distilling.

For a teacher released without its heads (the paper's open question). The teacher's
backbone stays frozen; only heads train, DINO-style self-distillation of the heads alone:
a trained head pair sees the teacher's tokens of one view, its EMA the other view (DINO,
cross-view, CLS) and the same view (iBOT, every patch), Sinkhorn-Knopp targets, AdamW with
warmup and cosine decay (weight decay 0.04 on weight matrices), EMA momentum 0.994 -> 1; the
weight-norm gains stay at 1, as in DINOv2. ``--learn-heads-steps`` steps (default 2,000) at
the run's batch size, each on the progress line and in ``metrics.jsonl`` (``"phase":
"heads"``); the EMA heads then become the frozen teacher heads of the distillation. They
are saved to ``RUN/teacher_heads.pt`` with their fingerprint and reused (or resumed) only
by a run of the same options.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import torch

from plismbench.distillation.build import State, autocast
from plismbench.distillation.centering import make_targets
from plismbench.distillation.heads import ProjectionHead, TeacherHeads
from plismbench.distillation.loss import dino_loss, ibot_loss
from plismbench.distillation.loss.dino import cross_view
from plismbench.distillation.loss.ibot import token_chunk
from plismbench.distillation.runfolder import HEADS_FILE, HEADS_VERSION, heads_fingerprint
from plismbench.distillation.runlog import RunLogger, progress_bar, progress_text
from plismbench.distillation.schedules import Schedules, scaled_lr
from plismbench.distillation.step import flatten_patches, update_momentum, views
from plismbench.utils import distributed as dist
from plismbench.utils.io import atomic_path

__all__ = ["HEADS_FILE", "learn_heads"]

_log = logging.getLogger("plismbench.distill")


def _fresh_heads(dim: int, k: int, seed: int) -> TeacherHeads:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = TeacherHeads(ProjectionHead(dim, k, bottleneck=384),
                             ProjectionHead(dim, k, bottleneck=256))  # fmt: skip
    heads.requires_grad_(True)
    for head in (heads.dino_head, heads.ibot_head):  # DINOv2: the gains stay at 1
        head.last_layer.weight_g.requires_grad_(False)
    return heads


def _head_step(
    st: State, trained: TeacherHeads, ema: TeacherHeads, targets: list[Any],
    tokens: torch.Tensor, tau_t: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The heads' DINO and iBOT losses on one batch of teacher tokens (2b rows, view 1 then
    view 2)."""
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
    return d.cross_entropy, i.cross_entropy


def _optimiser(trained: TeacherHeads) -> torch.optim.Optimizer:
    """AdamW, weight decay 0.04 on the weight matrices only (not biases; gains are frozen)."""
    params = [(n, p) for n, p in trained.named_parameters() if p.requires_grad]
    groups = [{"params": [p for _, p in params if p.ndim > 1], "weight_decay": 0.04},
              {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW(groups, lr=0.0)


def _load(path: Path, cfg: Any, device: torch.device) -> dict[str, Any] | None:
    """The head file's payload when it was written for this run's options, else None."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # unreadable: preflight refused it unless --overwrite
        return None
    if not isinstance(payload, dict) or payload.get("fingerprint") != heads_fingerprint(cfg):
        return None  # preflight refused it unless --overwrite: learn again
    return payload


def _save(path: Path, cfg: Any, step: int, ema: TeacherHeads, state: dict[str, Any]) -> None:
    payload = {"version": HEADS_VERSION, "fingerprint": heads_fingerprint(cfg), "step": step,
               "heads": ema.state_dict(), **state}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def learn_heads(st: State, corpus: Any, out: Path, logger: RunLogger | None = None) -> TeacherHeads:
    """Fit heads on ``corpus`` through the frozen teacher; install them as ``st.heads``.

    ``RUN/teacher_heads.pt`` holds the heads with the fingerprint of the options they
    depend on and the step reached: a finished file is reused, a partial one (written every
    ``--checkpoint-every`` steps) resumes, one of other options is learnt again.
    """
    from plismbench.distillation.corpus import CorpusLoader

    cfg = st.cfg
    path = out / HEADS_FILE
    k = cfg.num_prototypes()
    n = cfg.learn_heads_steps
    trained = _fresh_heads(st.teacher.dim, k, cfg.seed + 11).to(st.device)
    ema = copy.deepcopy(trained).requires_grad_(False)
    opt = _optimiser(trained)
    targets = [make_targets("sinkhorn", k), make_targets("sinkhorn", k)]
    payload = _load(path, cfg, st.device)
    start = 0
    if payload is not None:
        start = int(payload["step"])
        ema.load_state_dict(payload["heads"])
        if start < n:
            trained.load_state_dict(payload["trained"])
            opt.load_state_dict(payload["optimiser"])
    if logger is not None:
        logger.restart_heads(start)
    if start >= n:
        return _install(st, ema)
    sched = Schedules(steps=n, peak_lr=scaled_lr(cfg.lr, cfg.batch_size),
                      warmup_steps=max(1, n // 10), min_lr=cfg.min_lr, teacher_temp_warmup=0,
                      teacher_temp_end=cfg.teacher_temp[1])  # fmt: skip
    loader = CorpusLoader(corpus, global_batch=cfg.batch_size, seed=cfg.seed + 7,
                          start_step=start, rank=dist.rank(), world=dist.world(),
                          workers=cfg.workers, steps=n - start,
                          max_bad_tiles=cfg.max_bad_tiles, bad=st.skipped)  # fmt: skip
    amp = autocast(st.device, st.precision)
    rank0 = dist.rank() == 0
    began, seen = time.perf_counter(), 0
    try:
        with progress_bar(cfg.progress and rank0, n, start, "heads") as advance:
            for step, tiles in enumerate(loader, start=start):
                t0 = time.perf_counter()
                x = views(st, tiles, [int(p) for p in loader.positions(step)])
                with torch.no_grad(), amp:
                    tokens = st.teacher.backbone(st.teacher_norm(x).to(st.teacher_dtype))
                tau = sched.teacher_temp(step)
                l_dino, l_ibot = _head_step(st, trained, ema, targets, tokens, tau)
                (l_dino + l_ibot).backward()
                for p in trained.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= dist.world()
                torch.nn.utils.clip_grad_norm_(
                    [p for p in trained.parameters() if p.requires_grad], cfg.clip_grad or 3.0
                )
                for group in opt.param_groups:
                    group["lr"] = sched.lr(step)
                opt.step()
                opt.zero_grad(set_to_none=True)
                update_momentum(ema, trained, sched.ema_momentum(step))
                parts = dist.all_reduce_values([float(l_dino.detach()), float(l_ibot.detach())],
                                               st.device)  # fmt: skip
                d, i = (v / dist.world() for v in parts)
                seen += cfg.batch_size
                record = {"phase": "heads", "step": step, "loss": d + i, "loss_dino": d,
                          "loss_ibot": i, "lr": sched.lr(step), "teacher_temp": tau,
                          "ema_momentum": sched.ema_momentum(step),
                          "img_per_s": cfg.batch_size / max(time.perf_counter() - t0, 1e-9),
                          "skipped_tiles": len(st.skipped)}  # fmt: skip
                done = step + 1
                if logger is not None and (step % cfg.log_every == 0 or done == n):
                    logger.log(record)
                if rank0 and done < n and done % cfg.checkpoint_every == 0:
                    _save(path, cfg, done, ema, {"trained": trained.state_dict(),
                                                 "optimiser": opt.state_dict()})  # fmt: skip
                rate = seen / max(time.perf_counter() - began, 1e-9)
                advance(progress_text(record, (n - done) * cfg.batch_size / rate))
    finally:
        loader.close()
    if rank0:
        _save(path, cfg, n, ema, {})
    return _install(st, ema)
def _install(st: State, heads: TeacherHeads) -> TeacherHeads:
    frozen = TeacherHeads(heads.dino_head, heads.ibot_head).to(st.device)
    st.heads = frozen
    return frozen
