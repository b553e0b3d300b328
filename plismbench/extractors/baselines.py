"""Weight-free baselines: colour histograms, fast on CPU, registered like any model.

Both return the square root of per-channel normalised histograms (a Hellinger
embedding), so cosine and L2 distances between tiles are meaningful.
"""

from __future__ import annotations

from typing import Any

import torch

from plismbench.extractors.loaders import TimmBackbone
from plismbench.extractors.spec import IMAGENET_MEAN, IMAGENET_STD, ExtractorSpec

#: Ruifrok & Johnston (2001) optical-density vectors of haematoxylin, eosin and DAB (rows),
#: as in ``skimage.color.rgb_from_hed``; the stain matrix is its inverse (not row-normalised).
_RGB_FROM_HED = (
    (0.65, 0.70, 0.29),
    (0.07, 0.99, 0.11),
    (0.27, 0.57, 0.78),
)
#: Upper end of the binned concentration range per stain (H, E, DAB), in ``rgb2hed`` units
#: (concentrations start at 0; higher values fall in the last bin). About the 99th percentile
#: of the shipped H&E crop, with room for stronger stainings.
_HED_MAX = (0.4, 0.2, 0.15)
#: ``skimage.color.separate_stains``: ``log(max(rgb, 1e-6)) / log(1e-6)``.
_LOG_FLOOR = 1e-6


def _hist_features(bins: torch.Tensor, n_bins: int) -> torch.Tensor:
    """``bins`` (B, C, P) integer bin ids in [0, n_bins) to (B, C * n_bins) sqrt frequencies."""
    batch, channels, pixels = bins.shape
    offsets = torch.arange(batch * channels, device=bins.device).view(batch, channels, 1)
    flat = (bins.long() + offsets * n_bins).reshape(-1)
    counts = torch.bincount(flat, minlength=batch * channels * n_bins)
    freq = counts.view(batch, channels * n_bins).float() / float(pixels)
    return freq.sqrt()


def _subsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` (any float input is rounded) to ``(B, 3, P)`` every ``stride`` px."""
    if x.dtype != torch.uint8:
        x = x.round().clamp(0, 255).to(torch.uint8)
    if stride > 1:
        x = x[..., ::stride, ::stride]
    return x.reshape(x.shape[0], x.shape[1], -1)


class RGBHistogram(torch.nn.Module):
    """Per-channel histograms of raw 0-255 values (every ``stride``-th pixel per axis)."""

    def __init__(self, n_bins: int = 32, stride: int = 2):
        super().__init__()
        if 256 % n_bins:
            raise ValueError("n_bins must divide 256")
        self.n_bins = n_bins
        self.shift = (256 // n_bins).bit_length() - 1
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = _subsample(x, self.stride)
        return _hist_features(values >> self.shift, self.n_bins)


class HEDHistogram(torch.nn.Module):
    """Histograms of haematoxylin, eosin and DAB concentrations (colour deconvolution).

    Concentrations are exactly ``skimage.color.rgb2hed`` of the uint8 tile (tested against
    it): per pixel, ``log(max(rgb / 255, 1e-6)) / log(1e-6)`` times the inverse stain matrix,
    clipped at 0; each stain is then binned over ``[0, _HED_MAX]``.
    """

    def __init__(self, n_bins: int = 32, stride: int = 2):
        super().__init__()
        self.n_bins = n_bins
        self.stride = stride
        hed_from_rgb = torch.linalg.inv(torch.tensor(_RGB_FROM_HED, dtype=torch.float64))
        scale = n_bins / torch.tensor(_HED_MAX, dtype=torch.float64)
        # Each RGB channel's contribution to each stain's bin coordinate, for every uint8 value:
        # three (256, 3) lookup tables summed per pixel.
        values = (torch.arange(256, dtype=torch.float64) / 255.0).clamp_min(_LOG_FLOOR)
        log_rgb = torch.log(values) / torch.log(torch.tensor(_LOG_FLOOR, dtype=torch.float64))
        luts = log_rgb.view(1, 256, 1) * hed_from_rgb.view(3, 1, 3) * scale.view(1, 1, 3)
        self.luts: torch.Tensor
        self.register_buffer("luts", luts.float(), persistent=False)  # (3 rgb, 256, 3 hed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = _subsample(x, self.stride).long()  # (B, 3, P)
        coord = self.luts[0][values[:, 0]] + self.luts[1][values[:, 1]] + self.luts[2][values[:, 2]]
        bins = coord.clamp_(min=0).floor_().clamp_(0, self.n_bins - 1).to(torch.int64)
        return _hist_features(bins.transpose(1, 2), self.n_bins)


def _rgb_loader(
    spec: ExtractorSpec, *, pretrained: bool = True, **overrides: Any
) -> torch.nn.Module:
    return RGBHistogram(int(overrides.get("n_bins", 32)), int(overrides.get("stride", 2)))


def _hed_loader(
    spec: ExtractorSpec, *, pretrained: bool = True, **overrides: Any
) -> torch.nn.Module:
    return HEDHistogram(int(overrides.get("n_bins", 32)), int(overrides.get("stride", 2)))


#: The histogram modules read raw uint8 tiles: no normalisation, no resize.
_RAW: dict[str, Any] = {"normalise": False}
#: What the two weight-free histogram baselines share.
_HISTOGRAM: dict[str, Any] = {
    "embed_dim": 96, "pooling": "model", "num_prefix_tokens": 0, "input_size": 0,
    "dtype": "fp32", "params_m": 0.0, "licence": "Apache-2.0", **_RAW,
}  # fmt: skip


def _random_vit_loader(
    spec: ExtractorSpec, *, pretrained: bool, **overrides: Any
) -> torch.nn.Module:
    """ViT-Tiny/16 at 112 px with random weights from a fixed seed (same features every run)."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = timm.create_model(
            "vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=112, **overrides
        )
    return TimmBackbone(model, tokens=True)


#: Random weights, clearly labelled: shows what an untrained network scores.
_RANDOM_VIT = ExtractorSpec(
    name="vit-tiny-random",
    loader=_random_vit_loader,
    embed_dim=192,
    pooling="cls",
    num_prefix_tokens=1,
    input_size=112,
    resize=112,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    dtype="fp32",
    params_m=5.5,
    licence="n/a (random weights, seed 0)",
    description="Demo: timm ViT-Tiny/16 at 112 px with RANDOM weights (seed 0), not trained.",
)


BASELINES: tuple[ExtractorSpec, ...] = (
    ExtractorSpec(
        name="rgb-histogram",
        loader=_rgb_loader,
        aliases=("rgb-hist", "rgb"),
        description="Baseline: sqrt of 32-bin R, G and B histograms, every 2nd pixel (no weights).",
        **_HISTOGRAM,
    ),
    ExtractorSpec(
        name="hed-histogram",
        loader=_hed_loader,
        aliases=("hed-hist", "hed"),
        citation=(
            "Ruifrok AC, Johnston DA. Quantification of histochemical staining by colour "
            "deconvolution. Anal Quant Cytol Histol. 2001;23(4):291-299."
        ),
        description=(
            "Baseline: sqrt of 32-bin haematoxylin, eosin and DAB histograms, every 2nd pixel "
            "(no weights)."
        ),
        **_HISTOGRAM,
    ),
    _RANDOM_VIT,
)
#: The offline demo's random-weight ViT (``run`` with no model), a registry entry.
RANDOM_VIT = _RANDOM_VIT
