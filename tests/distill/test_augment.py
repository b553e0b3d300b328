"""Views: reproducible per sample, independent of the batch split, DINOv2 probabilities."""

from __future__ import annotations

import numpy as np
import torch

from plismbench.distill.augment import AugmentConfig, draw_params, make_views


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
