"""Views: reproducible per sample, independent of the batch split, DINOv2 probabilities."""

from __future__ import annotations

import numpy as np
import torch

from plismbench.distillation.augment import AugmentConfig, ViewParams, draw_params, make_views


def _tiles(n: int) -> list[torch.Tensor]:
    from PIL import Image

    from plismbench.assets import __file__ as assets

    image = np.asarray(Image.open(str(assets).replace("__init__.py", "cmu1_he_region.jpg")))
    return [torch.from_numpy(image[i * 40 : i * 40 + 224, :224].copy()) for i in range(n)]


def test_params_reproducible_and_probabilities() -> None:
    cfg = AugmentConfig()
    assert draw_params(3, 17, 1, (224, 224), cfg) == draw_params(3, 17, 1, (224, 224), cfg)
    assert draw_params(3, 17, 0, (224, 224), cfg) != draw_params(3, 17, 1, (224, 224), cfg)
    v1 = [draw_params(0, p, 0, (224, 224), cfg) for p in range(2000)]
    v2 = [draw_params(0, p, 1, (224, 224), cfg) for p in range(2000)]
    # DINOv2's effective blur: never on view 1, 0.9 on view 2; solarize on view 2 only
    assert all(p.sigma is None for p in v1) and not any(p.solarize for p in v1)
    assert abs(np.mean([p.sigma is not None for p in v2]) - 0.9) < 0.03
    assert abs(np.mean([p.solarize for p in v2]) - 0.2) < 0.03
    assert abs(np.mean([p.jitter is not None for p in v1]) - 0.8) < 0.03
    assert abs(np.mean([p.grayscale for p in v1]) - 0.2) < 0.03
    areas = [p.box[2] * p.box[3] / 224**2 for p in v1]
    assert min(areas) >= 0.3 and max(areas) <= 1.0
    stated = AugmentConfig(blur_probs=(1.0, 0.1))
    assert all(draw_params(0, p, 0, (224, 224), stated).sigma is not None for p in range(50))


def test_views_do_not_depend_on_batch_split() -> None:
    cfg = AugmentConfig(image_size=56, blur_probs=(0.5, 0.9))
    tiles = _tiles(6)
    params = [draw_params(0, p, 1, (224, 224), cfg) for p in range(6)]
    whole = make_views(tiles, params, cfg)
    halves = torch.cat([make_views(tiles[:3], params[:3], cfg),
                        make_views(tiles[3:], params[3:], cfg)])  # fmt: skip
    assert whole.shape == (6, 3, 56, 56)
    torch.testing.assert_close(whole, halves, rtol=1e-5, atol=1e-6)
    assert float(whole.min()) >= 0.0 and float(whole.max()) <= 1.0


# --- colour operations against torchvision's functional ops (oracles) -----------------------


def _colours() -> torch.Tensor:
    """Real H&E crops plus pure and mixed colours in every hue sextant (every HSV branch)."""
    he = torch.stack([t[:32, :32] for t in _tiles(2)]).permute(0, 3, 1, 2).float() / 255
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(2, 3, 32, 32, generator=g)
    hues = torch.linspace(0, 1, 32 * 32 + 1)[:-1].view(1, 32, 32)
    sextant = torch.stack([(hues * 6 + k) % 6 for k in (5, 3, 1)], 1)  # r, g, b phases
    wheel = (1 - (sextant - 3).abs().sub(1).clamp(0, 1)).clamp(0, 1)  # a full colour wheel
    grey = torch.full((1, 3, 32, 32), 0.4)
    return torch.cat([he, rand, wheel, 0.3 + 0.5 * wheel, grey])


def test_colour_ops_match_torchvision() -> None:
    import torchvision.transforms.v2.functional as TF

    from plismbench.distillation.augment import _blur, _gray, _jitter_op

    x = _colours()
    n = len(x)
    for factor in (0.6, 1.0, 1.4):
        f = torch.full((n,), factor)
        torch.testing.assert_close(_jitter_op(x, 0, f), TF.adjust_brightness(x, factor))
        for op, ref in ((1, TF.adjust_contrast), (2, TF.adjust_saturation)):
            torch.testing.assert_close(_jitter_op(x, op, f), ref(x, factor), atol=2e-4, rtol=0)
    for shift in (-0.1, -0.03, 0.05, 0.1, 0.5):
        got = _jitter_op(x, 3, torch.full((n,), shift))
        torch.testing.assert_close(got, TF.adjust_hue(x, shift), atol=2e-5, rtol=0)
    shifts = torch.linspace(-0.1, 0.1, n)  # one shift per image
    got = _jitter_op(x, 3, shifts)
    for i in range(n):
        torch.testing.assert_close(got[i], TF.adjust_hue(x[i], float(shifts[i])), atol=2e-5, rtol=0)
    torch.testing.assert_close(
        _gray(x), TF.rgb_to_grayscale(x, num_output_channels=3), atol=2e-4, rtol=0
    )
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 1.3, 0.7, 1.9])[:n]
    blurred = _blur(x, sigmas, 9)
    for i in range(n):
        s = float(sigmas[i])
        ref = TF.gaussian_blur(x[i], kernel_size=[9, 9], sigma=[s, s])
        torch.testing.assert_close(blurred[i], ref, atol=1e-5, rtol=0)


def _oracle(tile: torch.Tensor, p: ViewParams, cfg: AugmentConfig) -> torch.Tensor:
    """One view made with torchvision's functional ops in DINOv2's order."""
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    x = tile.permute(2, 0, 1).float() / 255
    top, left, h, w = p.box
    size = [cfg.image_size, cfg.image_size]
    x = TF.resized_crop(x, top, left, h, w, size, InterpolationMode.BICUBIC, antialias=True)
    x = x.clamp(0, 1)
    if p.flip:
        x = TF.horizontal_flip(x)
    if p.jitter is not None:
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in p.order:
            x = ops[op](x, p.jitter[op])
    if p.grayscale:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.sigma is not None:
        x = TF.gaussian_blur(x, kernel_size=[cfg.blur_kernel] * 2, sigma=[p.sigma] * 2)
    if p.solarize:
        x = TF.solarize(x, threshold=0.5)
    return x


def test_views_match_a_torchvision_pipeline() -> None:
    cfg = AugmentConfig(image_size=48, jitter_p=1.0, blur_probs=(0.5, 0.5),
                        solarize_probs=(0.5, 0.5))  # fmt: skip
    tiles = _tiles(8)
    params = [draw_params(1, p, p % 2, (224, 224), cfg) for p in range(8)]
    assert len({p.order for p in params}) > 1 and any(p.solarize for p in params)
    views = make_views(tiles, params, cfg)
    for i, (tile, p) in enumerate(zip(tiles, params, strict=True)):
        torch.testing.assert_close(views[i], _oracle(tile, p, cfg), atol=1e-3, rtol=0)
