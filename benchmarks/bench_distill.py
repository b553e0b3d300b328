"""Distillation step benchmark: step time, img/s and where the time goes.

    uv run python benchmarks/bench_distill.py              # CPU: ViT-S/14 -> vit-tiny, 56 px
    uv run python benchmarks/bench_distill.py --gpu-paper  # ViT-g/14 -> ViT-B/14, 224 px

Each step is timed whole (views, teacher, targets, student forward/backward, AdamW, EMA),
then its parts are timed alone on the same batch: the two augmented views, the teacher
forward (backbone + heads, no grad) and the rest (student forward/backward, loss,
optimiser), by difference. Teachers are ``timm:`` architectures with random weights
(the time does not depend on the weights).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from plismbench.distill.data import TileStream
from plismbench.distill.train import _autocast, _build, _step, _views, config_from


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="timm:vit_small_patch14_reg4_dinov2")
    parser.add_argument("--student", default="vit-tiny")
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prototypes", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--loss", default="dino-ibot")
    paper = "ViT-g/14 teacher, ViT-B/14 student, 224 px, K=131072, batch 64"
    parser.add_argument("--gpu-paper", action="store_true", help=paper)
    args = parser.parse_args()
    if args.gpu_paper:
        args.teacher, args.student = "timm:vit_giant_patch14_reg4_dinov2", "vit-base"
        args.image_size, args.prototypes, args.batch_size = 224, 131072, 64
    from plismbench.data.sources import open_source
    from plismbench.data.synth import synth

    with tempfile.TemporaryDirectory() as tmp:
        synth(tmp, n_tiles=max(16, args.batch_size), stainings=["GIV"], scanners=["AT2"],
              formats=["folder"])  # fmt: skip
        source = open_source(tiles_dir=Path(tmp) / "tiles")
        cfg = config_from(teacher=args.teacher, output_dir=Path(tmp) / "run", student=args.student,
                          image_size=args.image_size, prototypes=args.prototypes,
                          batch_size=args.batch_size, steps=1000, loss=args.loss,
                          device=args.device, progress=False)  # fmt: skip
        from plismbench.distill.train import _device

        device = _device(cfg.device)
        st = _build(cfg, device)
        stream = TileStream(source, seed=0, workers=4)
        b = args.batch_size
        step_t, view_t, teach_t = [], [], []
        for step in range(args.steps + 2):
            pos = list(range(step * b, step * b + b))
            tiles = [f.result() for f in stream.fetch(pos)]
            _sync(device)
            t0 = time.perf_counter()
            x = _views(st, tiles, pos)
            _sync(device)
            t1 = time.perf_counter()
            _step(st, step, x)
            _sync(device)
            t2 = time.perf_counter()
            with torch.no_grad(), _autocast(device, st.precision):
                tokens = st.teacher.backbone(st.teacher_norm(x))
                if st.heads is not None:
                    st.heads.dino_head(tokens[:, 0].float())
                    patches = tokens[:, st.teacher.num_prefix_tokens :]
                    st.heads.ibot_head.embed(patches.reshape(-1, patches.shape[-1]).float())
            _sync(device)
            t3 = time.perf_counter()
            if step >= 2:
                view_t.append(t1 - t0)
                step_t.append(t2 - t0)
                teach_t.append(t3 - t2)
        stream.close()
    step_s = statistics.median(step_t)
    views_s = statistics.median(view_t)
    teacher_s = statistics.median(teach_t)
    student_s = max(step_s - views_s - teacher_s, 0.0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), threads {torch.get_num_threads()}, "
          f"precision {st.precision}")  # fmt: skip
    print(f"teacher {args.teacher} -> student {args.student}, {args.image_size} px, "
          f"batch {b} (x2 views), K={args.prototypes}, loss {args.loss}")  # fmt: skip
    print(f"step time (median of {args.steps}): {step_s * 1000:.0f} ms  ->  {b / step_s:.1f} img/s")
    for label, value in (("views (augment)", views_s), ("teacher forward + heads", teacher_s),
                         ("student fwd/bwd + loss + AdamW + EMA", student_s)):  # fmt: skip
        print(f"  {label:<38} {value * 1000:8.0f} ms  {100 * value / step_s:5.1f}%")


if __name__ == "__main__":
    main()
