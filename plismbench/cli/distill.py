"""CLI command ``plismbench distill`` (see :mod:`plismbench.distill`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from plismbench.cli.app import app, err_console
from plismbench.cli.options import DownloadDir, Parquet, Streaming, TilesDir
from plismbench.errors import InputError


def _pair(text: str, what: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{what} takes two comma-separated numbers, got {text!r}") from None
    return a, b


@app.command("distill")
def distill_command(
    teacher: Annotated[
        str,
        typer.Option("--teacher", help="Registry name, hf-hub:org/name, a folder or timm:ARCH."),
    ],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="RUN folder: metrics, checkpoint, student/.")
    ],
    teacher_heads: Annotated[
        str,
        typer.Option(
            "--teacher-heads",
            help="Teacher checkpoint with dino_head.*/ibot_head.* (and backbone.*), or random.",
        ),
    ] = "random",
    student: Annotated[
        str, typer.Option("--student", help="vit-tiny, vit-small, vit-base or timm:ARCH.")
    ] = "vit-base",
    loss: Annotated[str, typer.Option("--loss", help="dino-ibot or cosine.")] = "dino-ibot",
    prototypes: Annotated[
        int | None,
        typer.Option("--prototypes", help="K for random heads (default 131072).", min=1),
    ] = None,
    image_size: Annotated[int, typer.Option("--image-size", min=14)] = 224,
    tiles_dir: TilesDir = None,
    download_dir: DownloadDir = None,
    streaming: Streaming = False,
    parquet: Parquet = None,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 105_000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Global batch (all processes).")
    ] = 2048,
    lr: Annotated[
        float, typer.Option("--lr", help="Base lr for batch 1024 (scaled by sqrt(B/1024)).")
    ] = 4e-3,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help="Default: 10% of --steps.")
    ] = None,
    teacher_temp_warmup: Annotated[
        int | None, typer.Option("--teacher-temp-warmup", help="Default: 30% of --steps.")
    ] = None,
    freeze_last_layer_steps: Annotated[
        int | None,
        typer.Option("--freeze-last-layer-steps", help="Default: 1% of --steps (>= 1)."),
    ] = None,
    layer_decay: Annotated[float, typer.Option("--layer-decay")] = 0.9,
    centring: Annotated[
        str, typer.Option("--centring", help="sinkhorn (log-domain, 3 iterations) or centre.")
    ] = "sinkhorn",
    ema: Annotated[
        str, typer.Option("--ema", help="EMA momentum start,end (cosine); equal = constant.")
    ] = "0.994,1.0",
    blur_probs: Annotated[
        str,
        typer.Option(
            "--blur-probs",
            help="Blur probability of view 1,view 2 (DINOv2 effective 0,0.9; stated 1,0.1).",
        ),
    ] = "0.0,0.9",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 on GPU), bf16 or fp32.")
    ] = "auto",
    workers: Annotated[int, typer.Option("--workers", "-w", min=1)] = 4,
    log_every: Annotated[int, typer.Option("--log-every", min=1)] = 1,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1)] = 1000,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Also log to RUN/tensorboard.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from RUN/checkpoint.pt.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Distil a teacher into a small ViT (DINO + iBOT, or cosine); torchrun for many GPUs."""
    from plismbench.distill import distill

    result = distill(
        teacher,
        output_dir=output_dir,
        tiles_dir=tiles_dir,
        download_dir=download_dir,
        streaming=streaming,
        parquet=parquet,
        teacher_heads=teacher_heads,
        student=student,
        loss=loss,
        prototypes=prototypes,
        image_size=image_size,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        teacher_temp_warmup=teacher_temp_warmup,
        freeze_last_layer_steps=freeze_last_layer_steps,
        layer_decay=layer_decay,
        centring=centring,
        ema_momentum=_pair(ema, "--ema"),
        blur_probs=_pair(blur_probs, "--blur-probs"),
        seed=seed,
        device=device,
        precision=precision,
        workers=workers,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        tensorboard=tensorboard,
        resume=resume,
        progress=progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        if not result.last:
            err_console.print(f"{output_dir} already holds all {result.steps} steps")
        else:
            err_console.print(
                f"distilled {result.steps} steps in {result.seconds:.1f}s "
                f"({result.images_per_s:.1f} img/s); last loss {result.last['loss']:.4f}"
                f" -> {result.student_dir}"
            )
