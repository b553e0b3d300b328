"""The distillation run: bootstrap, config.yaml, build, resume, steps, checkpoints, export."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

from plismbench.data.base import TileSource
from plismbench.distillation import step as step_mod
from plismbench.distillation.build import State, build, heads_warning
from plismbench.distillation.checkpoint import load_checkpoint, save_checkpoint
from plismbench.distillation.config import DistillConfig
from plismbench.distillation.export import export_student, student_config
from plismbench.distillation.runfolder import (
    CHECKPOINT_FILE,
    DistillResult,
    preflight,
    warn,
    write_config,
)
from plismbench.distillation.runlog import RunLogger, progress_bar, progress_text
from plismbench.errors import InputError
from plismbench.utils import distributed as dist

__all__ = ["DistillResult", "run_distill", "write_config"]

_log = logging.getLogger("plismbench.distill")


def _export(st: State, out: Path) -> Path:
    built = st.built
    config = student_config(
        built.arch,
        built.model_args,
        name=f"{out.name}-student",
        num_features=built.dim,
        num_prefix_tokens=built.num_prefix_tokens,
        image_size=st.cfg.image_size,
        mean=st.teacher.mean,
        std=st.teacher.std,
        provenance={
            "teacher": st.cfg.teacher,
            "loss": st.cfg.loss,
            "steps": st.cfg.steps,
            "teacher_heads": st.cfg.teacher_heads or "random",
        },
    )
    return export_student(st.ema.backbone, out / "student", config)  # type: ignore[arg-type]


def run_distill(cfg: DistillConfig, source: TileSource | str | Path | None = None) -> DistillResult:
    """Train ``cfg.student`` from ``cfg.teacher`` on a tile corpus (``source`` or
    ``cfg.corpus``); see :func:`plismbench.distillation.distill`.

    Every check (options, the run folder, a resumed checkpoint's and a learnt head file's
    options, the corpus, the models) comes before the first write: a refused run leaves
    the folder as it was.
    """
    cfg.check()
    spec = source if source is not None else cfg.corpus
    if spec is None:
        raise InputError("no tiles: pass --corpus PATH (or one PLISM tile source option)")
    start = preflight(cfg)
    ctx = dist.init_distributed(cfg.device)
    try:
        return _run(cfg, spec, ctx, start)
    finally:
        if ctx.initialised_here:
            with contextlib.suppress(Exception):
                dist.barrier()
        dist.shutdown(ctx)


def _size_warning(st: State) -> str | None:
    """A warning when the student has more parameters than its teacher."""
    n_student = sum(p.numel() for p in st.student.backbone.parameters())
    n_teacher = sum(p.numel() for p in st.teacher.backbone.parameters())
    if n_student <= n_teacher:
        return None
    return (f"WARNING: the student {st.cfg.student!r} has more parameters ({n_student:,}) than "
            f"its teacher {st.cfg.teacher!r} ({n_teacher:,}): this is not a distillation into "
            "a smaller model")  # fmt: skip


def _run(cfg: DistillConfig, spec: Any, ctx: dist.DistContext, start: int) -> DistillResult:
    from plismbench.distillation.corpus import PLISM_WARNING, CorpusLoader, open_corpus

    out = Path(cfg.output_dir)  # type: ignore[arg-type]
    world, rank = dist.world(), dist.rank()
    if cfg.batch_size % world:
        raise InputError(f"--batch-size {cfg.batch_size} is not divisible by {world} processes")
    if (cfg.batch_size // world) % cfg.grad_accum:
        raise InputError(f"{cfg.batch_size // world} images per process do not split into "
                         f"--grad-accum {cfg.grad_accum} micro-batches")  # fmt: skip
    ckpt = out / CHECKPOINT_FILE
    corpus = open_corpus(spec)
    st = build(cfg, ctx.device)
    # nothing was written so far; from here on the run owns the folder
    notes = [w for w in (heads_warning(cfg), _size_warning(st)) if w]
    if rank == 0:
        for note in notes:
            warn(note)
    if corpus.is_plism:  # open_corpus has warned already
        notes.append(f"WARNING: {PLISM_WARNING}")
    st.notes = notes
    if rank == 0:
        write_config(cfg, out, notes)
        if ckpt.exists() and not cfg.resume:  # --overwrite: this run starts again
            ckpt.unlink()
    dist.barrier()
    if cfg.resume and ckpt.exists():
        start = load_checkpoint(st, ckpt)
    logger = RunLogger(out, start, enabled=rank == 0, tensorboard=cfg.tensorboard,
                       wandb_project=cfg.wandb, config=cfg.resolved())  # fmt: skip
    loader: CorpusLoader | None = None
    last: dict[str, Any] = {}
    began = time.perf_counter()
    seen = 0
    try:
        if cfg.teacher_heads == "learn" and cfg.loss == "dino-ibot":
            from plismbench.distillation.learn_heads import learn_heads

            learn_heads(st, corpus, out, logger)
        else:
            logger.restart_heads(0)  # no head phase in this run
        loader = CorpusLoader(corpus, global_batch=cfg.batch_size, seed=cfg.seed,
                              start_step=start, rank=rank, world=world, workers=cfg.workers,
                              steps=max(0, cfg.steps - start), max_bad_tiles=cfg.max_bad_tiles,
                              bad=st.skipped)  # fmt: skip
        st.student.train()
        began = time.perf_counter()
        with progress_bar(cfg.progress and rank == 0, cfg.steps, start, "distill") as advance:
            tiles_iter = iter(loader)
            for step in range(start, cfg.steps):
                t0 = time.perf_counter()
                tiles = next(tiles_iter)
                x = step_mod.views(st, tiles, [int(p) for p in loader.positions(step)])
                record = step_mod.train_step(st, step, x)
                if not math.isfinite(record["loss"]):
                    raise InputError(f"the loss is not finite at step {step}; lower --lr")
                seen += cfg.batch_size
                record["img_per_s"] = cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
                record["skipped_tiles"] = len(st.skipped)
                record["phase"] = "distill"
                last = record
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    logger.log(record)
                done = step + 1
                if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                    save_checkpoint(st, ckpt, done)
                rate = seen / max(time.perf_counter() - began, 1e-9)
                advance(progress_text(record, (cfg.steps - done) * cfg.batch_size / rate))
        student_dir = _export(st, out) if rank == 0 else out / "student"
    finally:
        logger.close()
        if loader is not None:
            loader.close()
    seconds = time.perf_counter() - began
    rate = seen / seconds if seconds > 0 else 0.0
    return DistillResult(output_dir=out, student_dir=student_dir, steps=cfg.steps, last=last,
                         seconds=seconds, images_per_s=rate,
                         skipped_tiles=len(st.skipped))  # fmt: skip
