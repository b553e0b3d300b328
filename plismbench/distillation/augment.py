"""DINOv2-style global views, batched on the device, reproducible per sample.

Every random draw of a sample's view comes from a generator seeded by
``(seed, position in the sample stream, view)``, so a sample is augmented identically
whatever the batch split across ranks and whether or not the run was resumed.

Blur probabilities: DINOv2's ``GaussianBlur(p)`` hands ``1 - p`` to ``RandomApply``, so
its configs asking for blur 1.0 / 0.1 on the two global views actually blur with
probability 0.0 / 0.9. The DINOv2-family models (and H0-mini) were trained with that
*effective* behaviour, which is our default (``blur_probs=(0.0, 0.9)``); pass
``(1.0, 0.1)`` for the probabilities the papers state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "ViewParams", "draw_params", "make_views"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the two global views."""

    image_size: int = 224
    crop_scale: tuple[float, float] = (0.32, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_probs: tuple[float, float] = (0.0, 0.9)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 9
    solarize_probs: tuple[float, float] = (0.0, 0.2)


@dataclass(frozen=True)
class ViewParams:
    """The random choices for one view of one sample."""

    box: tuple[int, int, int, int]  # top, left, height, width
    flip: bool
    jitter: tuple[float, float, float, float] | None  # brightness, contrast, saturation, hue
    order: tuple[int, ...]
    grayscale: bool
    sigma: float | None
    solarize: bool


def _crop_box(rng: np.random.Generator, h: int, w: int, cfg: AugmentConfig) -> tuple[int, ...]:
    area = h * w
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*cfg.crop_scale)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        cw = round(math.sqrt(target * ratio))
        ch = round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def draw_params(
    seed: int, position: int, view: int, shape: tuple[int, int], cfg: AugmentConfig
) -> ViewParams:
    """The choices for view ``view`` (0 or 1) of the sample at ``position`` in the stream."""
    rng = np.random.default_rng([seed, position, view])
    box = _crop_box(rng, shape[0], shape[1], cfg)
    flip = bool(rng.random() < cfg.flip_p)
    jitter = None
    factors = (
        rng.uniform(1 - cfg.brightness, 1 + cfg.brightness),
        rng.uniform(1 - cfg.contrast, 1 + cfg.contrast),
        rng.uniform(1 - cfg.saturation, 1 + cfg.saturation),
        rng.uniform(-cfg.hue, cfg.hue),
    )
    order = tuple(int(i) for i in rng.permutation(4))
    if rng.random() < cfg.jitter_p:
        jitter = tuple(float(f) for f in factors)
    grayscale = bool(rng.random() < cfg.grayscale_p)
    sigma_draw = float(rng.uniform(*cfg.blur_sigma))
    sigma = sigma_draw if rng.random() < cfg.blur_probs[view] else None
    solarize = bool(rng.random() < cfg.solarize_probs[view])
    return ViewParams(box, flip, jitter, order, grayscale, sigma, solarize)  # type: ignore[arg-type]


# --- batched colour operations on (n, 3, H, W) floats in [0, 1] -----------------------------


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (f * a + (1 - f) * b).clamp(0, 1)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn) through HSV."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0 * maxc)
    v = maxc
    h = (h + shift.view(-1, 1, 1)) % 1.0
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    rgb = [
        torch.stack(c, 1)
        for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = torch.zeros_like(x)
    for k in range(6):
        out = torch.where((i == k)[:, None], rgb[k], out)
    return out


def _jitter_op(x: torch.Tensor, op: int, f: torch.Tensor) -> torch.Tensor:
    fv = f.view(-1, 1, 1, 1)
    if op == 0:
        return (x * fv).clamp(0, 1)
    if op == 1:
        mean = _gray(x)[:, :1].mean(dim=(1, 2, 3), keepdim=True)
        return _blend(x, mean.expand_as(x), fv)
    if op == 2:
        return _blend(x, _gray(x), fv)
    return _hue(x, f)


def _blur(x: torch.Tensor, sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image (reflect padding)."""
    n, c, h, w = x.shape
    half = size // 2
    coords = torch.arange(size, device=x.device, dtype=x.dtype) - half
    k = torch.exp(-(coords[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, size)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, size), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, size, 1), groups=n * c)
    return y.view(n, c, h, w)


def make_views(
    tiles: list[torch.Tensor], params: list[ViewParams], cfg: AugmentConfig
) -> torch.Tensor:
    """Apply ``params`` to uint8 (H, W, 3) tiles already on the device -> (n, 3, S, S) floats."""
    size = cfg.image_size
    crops = []
    for tile, p in zip(tiles, params, strict=True):
        top, left, ch, cw = p.box
        x = tile[top : top + ch, left : left + cw].permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                          align_corners=False)  # fmt: skip
        crops.append(x.flip(-1) if p.flip else x)
    x = torch.cat(crops).clamp(0, 1)
    device = x.device
    jit = [i for i, p in enumerate(params) if p.jitter is not None]
    for slot in range(4):
        for op in range(4):
            idx = [i for i in jit if params[i].order[slot] == op]
            if not idx:
                continue
            f = torch.tensor([params[i].jitter[op] for i in idx], device=device)  # type: ignore[index]
            sel = torch.tensor(idx, device=device)
            x[sel] = _jitter_op(x[sel], op, f.to(x.dtype))
    gray = [i for i, p in enumerate(params) if p.grayscale]
    if gray:
        sel = torch.tensor(gray, device=device)
        x[sel] = _gray(x[sel]).contiguous()
    blur = [i for i, p in enumerate(params) if p.sigma is not None]
    if blur:
        sel = torch.tensor(blur, device=device)
        sig = torch.tensor([params[i].sigma for i in blur], device=device)  # type: ignore[misc]
        x[sel] = _blur(x[sel], sig, cfg.blur_kernel)
    sol = [i for i, p in enumerate(params) if p.solarize]
    if sol:
        sel = torch.tensor(sol, device=device)
        x[sel] = torch.where(x[sel] >= 0.5, 1.0 - x[sel], x[sel])
    return x
