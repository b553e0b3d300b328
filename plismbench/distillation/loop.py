"""The distillation run: bootstrap, config.yaml, build, resume, steps, checkpoints, export."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plismbench.data.base import TileSource
from plismbench.distillation import step as step_mod
from plismbench.distillation.build import State, build, heads_warning
from plismbench.distillation.checkpoint import load_checkpoint, save_checkpoint
from plismbench.distillation.config import DistillConfig
from plismbench.distillation.export import export_student, student_config
from plismbench.distillation.runlog import RunLogger, progress_text
from plismbench.errors import InputError
from plismbench.utils import distributed as dist
from plismbench.utils.io import atomic_path

__all__ = ["DistillResult", "run_distill", "write_config"]

_log = logging.getLogger("plismbench.distill")


@dataclass
class DistillResult:
    """What a finished run produced."""

    output_dir: Path
    student_dir: Path
    steps: int
    last: dict[str, Any]
    seconds: float
    images_per_s: float


def write_config(cfg: DistillConfig, out: Path, notes: list[str] | None = None) -> Path:
    """``RUN/config.yaml``: every resolved option, the concrete schedule and any warnings."""
    import yaml

    data = cfg.resolved()
    if notes:
        data["warnings"] = list(notes)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


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


@contextlib.contextmanager
def _progress(enabled: bool, total: int, start: int) -> Iterator[Callable[[str], None]]:
    from plismbench.utils.progress import make_progress

    with make_progress(enabled=enabled) as bar:
        task = bar.add_task("distill", total=total, completed=start)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=text)

        yield advance


def _warn(text: str) -> None:
    _log.warning(text)
    print(text, file=sys.stderr, flush=True)


def run_distill(cfg: DistillConfig, source: TileSource | str | Path | None = None) -> DistillResult:
    """Train ``cfg.student`` from ``cfg.teacher`` on a tile corpus (``source`` or
    ``cfg.corpus``); see :func:`plismbench.distillation.distill`."""
    cfg.check()
    spec = source if source is not None else cfg.corpus
    if spec is None:
        raise InputError("no tiles: pass --corpus PATH (or one PLISM tile source option)")
    ctx = dist.init_distributed(cfg.device)
    try:
        return _run(cfg, spec, ctx)
    finally:
        if ctx.initialised_here:
            with contextlib.suppress(Exception):
                dist.barrier()
        dist.shutdown(ctx)


def _run(cfg: DistillConfig, spec: Any, ctx: dist.DistContext) -> DistillResult:
    from plismbench.distillation.corpus import PLISM_WARNING, CorpusLoader, open_corpus

    out = Path(cfg.output_dir)  # type: ignore[arg-type]
    world, rank = dist.world(), dist.rank()
    if cfg.batch_size % world:
        raise InputError(f"--batch-size {cfg.batch_size} is not divisible by {world} processes")
    if (cfg.batch_size // world) % cfg.grad_accum:
        raise InputError(f"{cfg.batch_size // world} images per process do not split into "
                         f"--grad-accum {cfg.grad_accum} micro-batches")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise InputError(f"--out-dir {out} exists and is not a folder")
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not cfg.resume:
        raise InputError(
            f"{ckpt} exists: pass --resume to continue that run, or use a new --out-dir"
        )
    corpus = open_corpus(spec)
    notes = [w for w in (heads_warning(cfg),) if w]
    if rank == 0:
        for note in notes:
            _warn(note)
    if corpus.is_plism:  # open_corpus has warned already
        notes.append(f"WARNING: {PLISM_WARNING}")
    if rank == 0:
        write_config(cfg, out, notes)
    st = build(cfg, ctx.device)
    st.notes = notes
    if cfg.teacher_heads == "learn" and cfg.loss == "dino-ibot":
        from plismbench.distillation.learn_heads import learn_heads

        learn_heads(st, corpus, out)
    start = load_checkpoint(st, ckpt) if (cfg.resume and ckpt.exists()) else 0
    logger = RunLogger(out, start, enabled=rank == 0, tensorboard=cfg.tensorboard,
                       wandb_project=cfg.wandb, config=cfg.resolved())  # fmt: skip
    loader = CorpusLoader(corpus, global_batch=cfg.batch_size, seed=cfg.seed, start_step=start,
                          rank=rank, world=world, workers=cfg.workers,
                          steps=max(0, cfg.steps - start))  # fmt: skip
    st.student.train()
    last: dict[str, Any] = {}
    began = time.perf_counter()
    seen = 0
    try:
        with _progress(cfg.progress and rank == 0, cfg.steps, start) as advance:
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
        loader.close()
    seconds = time.perf_counter() - began
    rate = seen / seconds if seconds > 0 else 0.0
    return DistillResult(output_dir=out, student_dir=student_dir, steps=cfg.steps, last=last,
                         seconds=seconds, images_per_s=rate)  # fmt: skip
