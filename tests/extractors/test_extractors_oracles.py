"""Preprocessing and baselines against library oracles (torchvision, skimage, numpy);
``--weights`` that do not fit; CONCH random builds."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plismbench.errors import InputError
from plismbench.extractors.builtins import BUILTINS
from plismbench.extractors.registry import get_extractor, load_extractor

ASSET = Path(__file__).parents[2] / "plismbench" / "assets" / "cmu1_he_region.jpg"


def _he_tiles(size: int, n: int = 3) -> torch.Tensor:
    """``n`` real H&E tiles (uint8, (n, size, size, 3)) from the shipped CC0 crop."""
    img = np.asarray(Image.open(ASSET).convert("RGB"))
    tiles = [img[i * 150 : i * 150 + size, i * 200 : i * 200 + size] for i in range(n)]
    return torch.from_numpy(np.stack(tiles))


def _oracle_preprocess(tiles: torch.Tensor, spec) -> torch.Tensor:
    """torchvision: resize (to ``resize`` or the input size), centre crop, normalise."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = tiles.permute(0, 3, 1, 2).float()
    mode = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}[
        spec.interpolation
    ]
    side = spec.resize or spec.input_size
    if x.shape[-1] != side:
        x = TF.resize(x, [side, side], interpolation=mode, antialias=True)
    x = TF.center_crop(x, [spec.input_size, spec.input_size])
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


def test_prov_gigapath_resizes_to_256_then_crops_224() -> None:
    from plismbench.extractors.module import FeatureExtractor

    spec = get_extractor("prov-gigapath")
    tiles = _he_tiles(224)
    x = FeatureExtractor(spec, torch.nn.Identity()).preprocess(tiles)
    expected = _oracle_preprocess(tiles, spec)
    torch.testing.assert_close(x, expected, atol=2e-3, rtol=0)
    # and that is not a plain crop of the unresized tile
    assert (x - _oracle_preprocess(tiles, get_extractor("uni"))).abs().max() > 0.5


@pytest.mark.parametrize("spec", [s for s in BUILTINS if s.normalise], ids=lambda s: s.name)
def test_every_builtin_preprocesses_like_torchvision(spec) -> None:
    from plismbench.extractors.module import FeatureExtractor

    module = FeatureExtractor(spec, torch.nn.Identity())
    for size in (224, 256):
        tiles = _he_tiles(size)
        expected = _oracle_preprocess(tiles, spec)
        torch.testing.assert_close(module.preprocess(tiles), expected, atol=2e-3, rtol=0)


def _hist(values: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(values.reshape(-1), minlength=n_bins)[:n_bins]
    return np.sqrt(counts / values.size)


def test_rgb_histogram_is_numpys() -> None:
    tiles = _he_tiles(224)
    out = load_extractor("rgb-histogram")(tiles).numpy()
    for tile, feats in zip(tiles.numpy(), out, strict=True):
        sub = tile[::2, ::2]
        expected = [np.histogram(sub[..., c], bins=32, range=(0, 256))[0] for c in range(3)]
        freq = np.concatenate(expected) / sub[..., 0].size
        np.testing.assert_allclose(feats, np.sqrt(freq), atol=1e-6)


def test_hed_histogram_bins_skimage_rgb2hed() -> None:
    from skimage.color import rgb2hed

    from plismbench.extractors.baselines import _HED_MAX

    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.integers(0, 256, (2, 224, 224, 3), np.uint8))
    tiles = torch.cat([_he_tiles(224), noise])
    out = load_extractor("hed-histogram")(tiles).numpy() ** 2  # frequencies
    for tile, freq in zip(tiles.numpy(), out, strict=True):
        hed = rgb2hed(tile[::2, ::2])
        for k in range(3):
            bins = np.clip(np.floor(np.maximum(hed[..., k], 0) * 32 / _HED_MAX[k]), 0, 31)
            expected = _hist(bins.astype(np.int64), 32) ** 2
            got = freq[k * 32 : (k + 1) * 32]
            # float32 lookup tables vs float64: a pixel exactly on a bin edge may move
            assert np.abs(got - expected).sum() < 2e-3, (k, np.abs(got - expected).sum())
        assert np.abs(freq.sum() - 3) < 1e-5


# --- --weights that do not fit ------------------------------------------------------------


def _h0_mini_state(**kwargs) -> dict[str, torch.Tensor]:
    spec = get_extractor("h0-mini")
    backbone = spec.loader(spec, pretrained=False, depth=1, **kwargs)
    return {k: v.clone() for k, v in backbone.model.state_dict().items()}


def test_weights_with_other_shapes_name_the_keys(tmp_path: Path) -> None:
    state = _h0_mini_state()
    state["blocks.0.mlp.fc1.weight"] = torch.zeros(3072, 768)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    expected = r"blocks\.0\.mlp\.fc1\.weight \(3072, 768\) vs \(4096, 768\)"
    with pytest.raises(InputError, match=expected):
        load_extractor("h0-mini", weights=path, depth=1)


def test_weights_trained_on_another_grid_resample_pos_embed(tmp_path: Path) -> None:
    from timm.layers import resample_abs_pos_embed

    state = _h0_mini_state(img_size=112)  # 8 x 8 patches instead of 16 x 16
    path = tmp_path / "w.pt"
    torch.save(state, path)
    model = load_extractor("h0-mini", weights=path, depth=1)
    inner = model.backbone.model
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=[16, 16], num_prefix_tokens=0)
    torch.testing.assert_close(inner.pos_embed, expected)
    torch.testing.assert_close(inner.blocks[0].mlp.fc1.weight, state["blocks.0.mlp.fc1.weight"])


# --- CONCH random builds --------------------------------------------------------------------


def test_conch_random_build_needs_no_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """A stand-in ``conch`` package with the real factory's contract (checkpoint required)."""
    pkg = tmp_path / "conch" / "open_clip_custom"
    (pkg / "model_configs").mkdir(parents=True)
    (tmp_path / "conch" / "__init__.py").write_text("")
    config = {"embed_dim": 512, "vision_cfg": {"image_size": 448, "layers": 12},
              "text_cfg": {}, "custom_text": True}  # fmt: skip
    (pkg / "model_configs" / "conch_ViT-B-16.json").write_text(json.dumps(config))
    (pkg / "factory.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            CFG_DIR = Path(__file__).parent / "model_configs"

            def create_model_from_pretrained(cfg, checkpoint_path=None, force_image_size=None):
                if checkpoint_path.startswith("hf_hub:"):  # as CONCH does: None crashes
                    raise OSError("no network in tests")
            """
        )
    )
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            from .factory import create_model_from_pretrained

            BUILT = []

            class CoCa(torch.nn.Module):
                def __init__(self, embed_dim, vision_cfg, text_cfg):
                    super().__init__()
                    BUILT.append(vision_cfg)
                    self.proj = torch.nn.Linear(3, embed_dim)

                def encode_image(self, x, proj_contrast=True, normalize=True):
                    return self.proj(x.mean(dim=(2, 3)))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "conch" or m.startswith("conch.")]:
        monkeypatch.delitem(sys.modules, name)
    model = load_extractor("conch", pretrained=False, depth=2)
    assert model(_he_tiles(224, 2)).shape == (2, 512)
    import conch.open_clip_custom as occ

    assert occ.BUILT[-1] == {"image_size": 224, "layers": 2}
