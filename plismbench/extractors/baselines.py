"""Weight-free baselines: colour histograms, fast on CPU, registered like any model.

Both return the square root of per-channel normalised histograms (a Hellinger
embedding), so cosine and L2 distances between tiles are meaningful.
"""

from __future__ import annotations

from typing import Any

import torch

from plismbench.extractors.spec import ExtractorSpec

#: Ruifrok & Johnston (2001) optical-density vectors of haematoxylin, eosin and DAB.
_RGB_FROM_HED = (
    (0.65, 0.70, 0.29),
    (0.07, 0.99, 0.11),
    (0.27, 0.57, 0.78),
)
#: Concentration range binned per stain channel (H, E, DAB), in optical-density units.
_HED_RANGE = ((-0.2, 1.6), (-0.2, 1.2), (-0.6, 0.6))


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
    """Histograms of haematoxylin, eosin and DAB concentrations (colour deconvolution)."""

    def __init__(self, n_bins: int = 32, stride: int = 2):
        super().__init__()
        self.n_bins = n_bins
        self.stride = stride
        rgb_from_hed = torch.tensor(_RGB_FROM_HED, dtype=torch.float64)
        rgb_from_hed = rgb_from_hed / rgb_from_hed.norm(dim=1, keepdim=True)
        hed_from_rgb = torch.linalg.inv(rgb_from_hed)
        lo = torch.tensor([r[0] for r in _HED_RANGE], dtype=torch.float64)
        hi = torch.tensor([r[1] for r in _HED_RANGE], dtype=torch.float64)
        scale = n_bins / (hi - lo)
        # Optical density of every uint8 value, then each RGB channel's contribution to
        # each stain's bin coordinate: three (256, 3) lookup tables summed per pixel.
        od = -torch.log10((torch.arange(256, dtype=torch.float64) + 1.0) / 256.0)
        luts = od.view(1, 256, 1) * hed_from_rgb.view(3, 1, 3) * scale.view(1, 1, 3)
        luts[0] -= (lo * scale).view(1, 3)
        self.luts: torch.Tensor
        self.register_buffer("luts", luts.float(), persistent=False)  # (3 rgb, 256, 3 hed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = _subsample(x, self.stride).long()  # (B, 3, P)
        coord = self.luts[0][values[:, 0]] + self.luts[1][values[:, 1]] + self.luts[2][values[:, 2]]
        bins = coord.floor_().clamp_(0, self.n_bins - 1).to(torch.int64).transpose(1, 2)
        return _hist_features(bins, self.n_bins)


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

BASELINES: tuple[ExtractorSpec, ...] = (
    ExtractorSpec(
        name="rgb-histogram",
        loader=_rgb_loader,
        embed_dim=96,
        pooling="model",
        num_prefix_tokens=0,
        input_size=0,
        dtype="fp32",
        params_m=0.0,
        licence="Apache-2.0",
        aliases=("rgb-hist", "rgb"),
        description="Baseline: sqrt of 32-bin R, G and B histograms, every 2nd pixel (no weights).",
        **_RAW,
    ),
    ExtractorSpec(
        name="hed-histogram",
        loader=_hed_loader,
        embed_dim=96,
        pooling="model",
        num_prefix_tokens=0,
        input_size=0,
        dtype="fp32",
        params_m=0.0,
        licence="Apache-2.0",
        aliases=("hed-hist", "hed"),
        citation=(
            "Ruifrok AC, Johnston DA. Quantification of histochemical staining by colour "
            "deconvolution. Anal Quant Cytol Histol. 2001;23(4):291-299."
        ),
        description=(
            "Baseline: sqrt of 32-bin haematoxylin, eosin and DAB histograms, every 2nd pixel "
            "(no weights)."
        ),
        **_RAW,
    ),
)
