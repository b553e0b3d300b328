"""A tiny distill run for subprocess tests (resume after SIGKILL, torchrun DDP).

Usage: python distill_run.py OUT TILES STEPS [--kill-at STEP] [--resume] [--loss L]
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

TINY = {
    "teacher_heads": "random",
    "student": "vit-tiny",
    "image_size": 28,
    "prototypes": 128,
    "batch_size": 4,
    "lr": 2e-3,
    "workers": 0,
    "progress": False,
    "checkpoint_every": 2,
    "device": "cpu",
    "teacher_overrides": {"depth": 2},
    "student_overrides": {"depth": 2},
}
TEACHER = "timm:vit_small_patch14_reg4_dinov2"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("tiles")
    parser.add_argument("steps", type=int)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--loss", default="dino-ibot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from plismbench.distillation import step as step_mod

    if args.kill_at is not None:
        real_step = step_mod.train_step

        def step(st, i, x):  # type: ignore[no-untyped-def]
            if i == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_step(st, i, x)

        step_mod.train_step = step  # type: ignore[assignment]
    from plismbench.distillation import distill

    distill(TEACHER, output_dir=args.out, tiles_dir=args.tiles, steps=args.steps,
            resume=args.resume, loss=args.loss, **TINY)  # fmt: skip


if __name__ == "__main__":
    main()
