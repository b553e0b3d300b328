"""The demo's distilled student: the demo's random ViT distilled into a fresh ViT-Tiny.

``plismbench run --distill-demo`` adds it to the demo, so that ``analyze`` can set a
student beside its teacher as the H0-mini paper does (H0-mini from H-optimus-0). It is a
few CPU minutes, so it stays out of the default demo. The tiles are the demo's synthetic
PLISM: fine for a demonstration, never for a real student (see docs/distill.md).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

#: Optimiser steps of the demo distillation (a demonstration, not a trained model).
DEMO_STEPS = 12
#: Global batch of the demo distillation.
DEMO_BATCH = 16


def distill_demo_student(
    run_dir: Path, tiles: Any, teacher: str, *, device: str = "auto", progress: bool = False
) -> Path:
    """Distil ``teacher`` on ``tiles`` into ``run_dir/student`` (resumed, or reused when done)."""
    student = run_dir / "student"
    if (student / "model.safetensors").is_file():
        return student
    from plismbench.distillation import distill

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PLISM-corpus warning: intended here
        distill(
            teacher, output_dir=run_dir, source=tiles, student="timm:vit_tiny_patch16_224",
            image_size=112, steps=DEMO_STEPS, batch_size=DEMO_BATCH, prototypes=1024,
            teacher_heads="random", workers=0, progress=progress, device=device,
            resume=(run_dir / "checkpoint.pt").is_file(),
        )  # fmt: skip
    return student
