"""``--check-precision``: the chosen autocast dtype against fp32 on a probe batch."""

from __future__ import annotations

import torch

from plismbench.errors import InputError
from plismbench.extraction.config import ExtractConfig
from plismbench.extractors.module import FeatureExtractor


@torch.inference_mode()
def precision_drift(extractor: FeatureExtractor, tiles: torch.Tensor) -> float:
    """Worst cosine similarity between fp32 features and ``extractor.precision`` ones."""
    chosen = extractor.precision
    try:
        extractor.precision = "fp32"
        ref = extractor(tiles)
        extractor.precision = chosen
        got = extractor(tiles)
    finally:
        extractor.precision = chosen
    cos = torch.nn.functional.cosine_similarity(ref.double(), got.double(), dim=1, eps=1e-12)
    return float(cos.min())


def check_precision(extractor: FeatureExtractor, probe: torch.Tensor, cfg: ExtractConfig) -> float:
    worst = precision_drift(extractor, probe)
    cfg.say(f"precision check: worst cosine {worst:.6f} ({extractor.precision} vs fp32)")
    if worst < cfg.precision_threshold and not cfg.force:
        raise InputError(
            f"{extractor.name}: {extractor.precision} features drift from fp32 (worst cosine "
            f"{worst:.4f} < {cfg.precision_threshold}); use --precision fp32 or --force"
        )
    return worst
