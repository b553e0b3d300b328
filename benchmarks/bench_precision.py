"""Cosine between reduced-precision (bf16, fp16 autocast) and fp32 features of the same tiles.

Random-weight ViT-B/16 (timm, seed 0) and the H0-mini architecture (random weights), on real
H&E tiles cut from the shipped CC0 crop (plismbench/assets/cmu1_he_region.jpg), on the CPU.
A GPU run would use its own kernels, so this measures the size of the effect, not the exact
GPU figures. Usage::

    uv run python benchmarks/bench_precision.py [--tiles 64]
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.extractors.spec import IMAGENET_MEAN, IMAGENET_STD, ExtractorSpec

ASSET = Path(__file__).parents[1] / "plismbench" / "assets" / "cmu1_he_region.jpg"


def he_tiles(n: int, size: int = 224) -> torch.Tensor:
    """``n`` H&E tiles on a regular grid of offsets over the 896 px crop."""
    img = np.asarray(Image.open(ASSET).convert("RGB"))
    steps = range(0, img.shape[0] - size + 1, 96)
    tiles = [img[y : y + size, x : x + size] for y in steps for x in steps][:n]
    return torch.from_numpy(np.stack(tiles))


def _vit_b_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: object) -> torch.nn.Module:
    import timm

    from plismbench.extractors.loaders import TimmBackbone

    torch.manual_seed(0)
    return TimmBackbone(timm.create_model("vit_base_patch16_224", num_classes=0), tokens=True)


VIT_B = ExtractorSpec(
    name="vit-b16-random", loader=_vit_b_loader, embed_dim=768, mean=IMAGENET_MEAN, std=IMAGENET_STD
)


def cosines(spec: ExtractorSpec, tiles: torch.Tensor, precision: str) -> np.ndarray:
    """Per-tile cosine between ``precision`` and fp32 features (same weights)."""
    torch.manual_seed(0)
    ref_model = load_extractor(spec, pretrained=False, precision="fp32")
    model = load_extractor(spec, pretrained=False, precision=precision)
    model.load_state_dict(ref_model.state_dict())
    with torch.inference_mode():
        ref = torch.cat([ref_model(b) for b in tiles.split(16)])
        low = torch.cat([model(b) for b in tiles.split(16)])
    return torch.nn.functional.cosine_similarity(ref.double(), low.double(), dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tiles = he_tiles(args.tiles)
    rows = []
    for spec in (VIT_B, replace(get_extractor("h0-mini"), name="h0-mini (random weights)")):
        for precision in ("bf16", "fp16"):
            try:
                cos = cosines(spec, tiles, precision)
            except RuntimeError as exc:  # an op without a CPU kernel in this precision
                rows.append({"model": spec.name, "precision": precision, "error": str(exc)[:80]})
                continue
            rows.append({
                "model": spec.name, "precision": precision, "tiles": len(cos),
                "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            })  # fmt: skip
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "rows": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
