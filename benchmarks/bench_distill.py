"""Distillation step benchmark: img/s, where the time goes, and what the iBOT loss holds.

    uv run python benchmarks/bench_distill.py              # CPU: ViT-S/14 -> vit-tiny, 56 px
    uv run python benchmarks/bench_distill.py --gpu-paper  # ViT-g/14 -> ViT-B/14, 224 px, bf16
    uv run python benchmarks/bench_distill.py --smoke      # seconds: CI keeps this file working

Each step is timed whole (teacher, targets, student forward/backward, AdamW, EMA), then
its parts alone on the same batch: the two augmented views, the teacher backbone, the
teacher heads (bottlenecks and every iBOT logit chunk) and, by difference, the student
with its losses and the optimiser. Teachers are ``timm:`` architectures with random
weights (time does not depend on weights).

Memory: the bytes the iBOT loss keeps for the backward pass (saved tensors), per image,
against the ``K x P x 4``-byte floor of one view's fp32 targets, for this code (targets
recomputed per chunk in backward) and for targets saved as checkpoint inputs (before).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plismbench.distillation.build import autocast, build
from plismbench.distillation.config import PROTOTYPES, config_from
from plismbench.distillation.step import flatten_patches, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Any) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def held_bytes(n_tokens: int, k: int, d: int = 256, chunk: int = 512, before: bool = False) -> int:
    """Bytes saved for backward by the iBOT loss over ``n_tokens`` tokens and K prototypes."""
    from torch.utils.checkpoint import checkpoint

    from plismbench.distillation.centering import SinkhornKnopp
    from plismbench.distillation.loss import ibot_loss
    from plismbench.distillation.loss.stream import _chunk_ce

    z = F.normalize(torch.randn(n_tokens, d), dim=-1).requires_grad_(True)
    w = torch.randn(k, d, requires_grad=True)
    tz, tw = F.normalize(torch.randn(n_tokens, d), dim=-1), torch.randn(k, d)
    targets = SinkhornKnopp(3).prepare(lambda lo, hi: tz[lo:hi] @ tw.T, n_tokens, 0.07, chunk)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in (z.data_ptr(), w.data_ptr()):
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    kept: list[object] = []  # the graph (and what it saved) stays alive, as until backward
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if before:  # targets passed to checkpoint() as inputs: saved for backward
            for lo in range(0, n_tokens, chunk):
                hi = min(lo + chunk, n_tokens)
                with torch.no_grad():
                    t = targets(lo, hi)
                kept.append(checkpoint(_chunk_ce, z[lo:hi], w, t, 0.1, use_reentrant=False))
        else:
            kept.append(ibot_loss(z, w, targets, 0.1, chunk=chunk))
    return sum(seen.values())


def memory_report(k: int, patches: int, images: int = 2) -> None:
    n = 2 * images * patches  # both views
    floor = k * patches * 4
    print(f"iBOT targets held until backward (K={k}, P={patches}); floor K x P x 4 = "
          f"{floor / 2**20:.1f} MiB per image-view")  # fmt: skip
    for label, before in (("targets saved as checkpoint inputs (before)", True),
                          ("targets recomputed per chunk (now)", False)):  # fmt: skip
        held = held_bytes(n, k, before=before) / images
        print(f"  {label:<45} {held / 2**20:9.2f} MiB/image  ({held / floor:6.3f} x floor)")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--teacher", default="timm:vit_small_patch14_reg4_dinov2")
    parser.add_argument("--student", default="vit-tiny")
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prototypes", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--loss", default="dino-ibot")
    paper = f"ViT-g/14 teacher, ViT-B/14 student, 224 px, bf16, K={PROTOTYPES}, batch 64"
    parser.add_argument("--gpu-paper", action="store_true", help=paper)
    parser.add_argument("--smoke", action="store_true", help="depth-1 models, 28 px, 1 step")
    parser.add_argument("--memory", action="store_true", help="only the iBOT memory report")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    warmup = 2
    if args.gpu_paper:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu-paper needs a CUDA GPU (none here); see docs/benchmarks.md "
                             "for the FLOP estimate")  # fmt: skip
        args.teacher, args.student = "timm:vit_giant_patch14_reg4_dinov2", "vit-base"
        args.image_size, args.prototypes, args.batch_size = 224, PROTOTYPES, 64
        args.precision = "bf16"
    if args.smoke:
        args.image_size, args.prototypes, args.batch_size, args.steps = 28, 64, 2, 1
        overrides, warmup = {"depth": 1}, 0
    if args.memory or args.smoke:
        memory_report(args.prototypes if not args.smoke else 512, (args.image_size // 14) ** 2)
        if args.memory:
            return {}
    cfg = config_from(teacher=args.teacher, output_dir=Path("unused"), student=args.student,
                      image_size=args.image_size, prototypes=args.prototypes,
                      batch_size=args.batch_size, steps=1000, loss=args.loss,
                      device=args.device, precision=args.precision, progress=False,
                      teacher_heads="random", teacher_overrides=overrides,
                      student_overrides=overrides)  # fmt: skip
    from plismbench.utils.device import resolve_device

    device = resolve_device(cfg.device)
    st = build(cfg, device)
    b = args.batch_size
    g = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {k: [] for k in ("step", "teacher", "heads")}
    for i in range(args.steps + warmup):
        x = torch.rand(2 * b, 3, args.image_size, args.image_size, generator=g).to(device)
        step_s = _timed(device, lambda x=x, i=i: train_step(st, i, x))
        amp = autocast(device, st.precision)
        with torch.no_grad(), amp:
            holder: list[torch.Tensor] = []
            teacher_s = _timed(device, lambda x=x, h=holder: h.append(
                st.teacher.backbone(st.teacher_norm(x).to(st.teacher_dtype))))  # fmt: skip
            tokens = holder[0]

            def heads(tokens: torch.Tensor = tokens) -> None:
                if st.heads is None:
                    return
                st.heads.dino_head(tokens[:, 0].float())
                z = st.heads.ibot_head.embed(
                    flatten_patches(tokens, st.teacher.num_prefix_tokens).float())
                w = st.heads.ibot_head.prototypes()
                for lo in range(0, z.shape[0], 512):
                    torch.softmax((z[lo : lo + 512] @ w.T).float(), dim=-1)

            heads_s = _timed(device, heads)
        if i >= warmup:
            times["step"].append(step_s)
            times["teacher"].append(teacher_s)
            times["heads"].append(heads_s)
    med = {k: statistics.median(v) for k, v in times.items()}
    rest = max(med["step"] - med["teacher"] - med["heads"], 0.0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), threads {torch.get_num_threads()}, "
          f"precision {st.precision}")  # fmt: skip
    print(f"teacher {args.teacher} -> student {args.student}, {args.image_size} px, "
          f"batch {b} (x2 views), K={args.prototypes}, loss {args.loss}")  # fmt: skip
    print(f"step time (median of {args.steps}): {med['step'] * 1000:.0f} ms  ->  "
          f"{b / med['step']:.1f} img/s")  # fmt: skip
    for label, value in (("teacher backbone", med["teacher"]),
                         ("teacher heads + iBOT targets", med["heads"]),
                         ("student fwd/bwd + losses + AdamW + EMA", rest)):  # fmt: skip
        print(f"  {label:<40} {value * 1000:8.0f} ms  {100 * value / med['step']:5.1f}%")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return {"img_per_s": b / med["step"], **med}


if __name__ == "__main__":
    main()
