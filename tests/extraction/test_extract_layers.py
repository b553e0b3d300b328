"""``extract --layers``: per-layer pooled features beside the final ones, same layout, resumable."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract_memsource import CrashingSource, MemorySource

from plismbench.errors import InputError
from plismbench.extraction import extract
from plismbench.extraction.layers import n_layers, parse_layers
from plismbench.extractors.module import FeatureExtractor, pool_tokens
from plismbench.extractors.registry import get_extractor, load_extractor


@pytest.fixture(scope="module")
def vit() -> FeatureExtractor:
    """H0-mini's blocks (4 register tokens) pooled CLS+mean, three blocks, 32 px."""
    spec = replace(get_extractor("h0-mini"), input_size=32, pooling="cls+mean", embed_dim=1536)
    torch.manual_seed(0)
    return load_extractor(spec, pretrained=False, depth=3, img_size=32, device="cpu")


@torch.inference_mode()
def _hooked(vit: FeatureExtractor, tiles: np.ndarray, block: int) -> np.ndarray:
    """Oracle: a forward hook on block ``block`` (0-based), the final norm, the spec's pooling."""
    model = vit.backbone.model
    seen: list[torch.Tensor] = []
    handle = model.blocks[block].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        vit(torch.from_numpy(tiles))
    finally:
        handle.remove()
    tokens = model.norm(seen[0])
    return pool_tokens(tokens, "cls+mean", vit.spec.num_prefix_tokens).numpy()


def test_layers_layout_values_and_meta(tmp_path: Path, vit: FeatureExtractor) -> None:
    assert n_layers(vit) == 3
    source = MemorySource(n_slides=1, n_tiles=6, size=32)
    result = extract(vit, source, tmp_path, layers="1,3", batch_size=4, workers=0)
    assert result.layers == [1, 3]
    slide = tmp_path / "h0-mini" / "SLIDE00"
    final = np.load(slide / "features.npy")
    assert json.loads((slide / "meta.json").read_text())["layers"] == [1, 3]
    tiles = source.tiles["SLIDE00"]
    for layer in (1, 3):
        feats = np.load(slide / "layers" / str(layer) / "features.npy")
        assert feats.dtype == np.float32 and feats.shape == final.shape
        np.testing.assert_array_equal(feats[:, :3], final[:, :3])
        np.testing.assert_allclose(feats[:, 3:], _hooked(vit, tiles, layer - 1), atol=1e-5)
    np.testing.assert_allclose(np.load(slide / "layers" / "3" / "features.npy"), final, atol=1e-6)
    # Without --layers the finished slide is reused; asking for a new layer redoes it.
    again = extract(vit, source, tmp_path, batch_size=4, workers=0)
    assert again.slides_skipped == ["SLIDE00"]
    more = extract(vit, source, tmp_path, layers=[2], batch_size=4, workers=0)
    assert more.slides_done == ["SLIDE00"]
    assert json.loads((slide / "meta.json").read_text())["layers"] == [1, 2, 3]


def test_layers_resume_after_a_kill(tmp_path: Path, vit: FeatureExtractor) -> None:
    opts = {"layers": "all", "batch_size": 2, "chunk_rows": 2, "workers": 0}
    extract(vit, MemorySource(n_slides=1, n_tiles=8, size=32), tmp_path / "clean", **opts)
    with pytest.raises(KeyboardInterrupt):
        extract(vit, CrashingSource(crash_after=5, n_slides=1, n_tiles=8, size=32),
                tmp_path / "resumed", **opts)  # fmt: skip
    partial = tmp_path / "resumed" / "h0-mini" / "SLIDE00" / ".partial"
    assert list(partial.glob("layer_2_chunk_*.npy"))
    source = MemorySource(n_slides=1, n_tiles=8, size=32)
    extract(vit, source, tmp_path / "resumed", **opts)
    assert source.reads < 8
    for rel in ("features.npy", "layers/1/features.npy", "layers/2/features.npy"):
        a = np.load(tmp_path / "clean" / "h0-mini" / "SLIDE00" / rel)
        b = np.load(tmp_path / "resumed" / "h0-mini" / "SLIDE00" / rel)
        np.testing.assert_array_equal(a, b)


def test_bad_layers(vit: FeatureExtractor) -> None:
    assert parse_layers("all", vit) == [1, 2, 3] and parse_layers(" 3,1,3", vit) == [1, 3]
    for bad in ("0", "4", "a,b", ","):
        with pytest.raises(InputError, match="--layers"):
            parse_layers(bad, vit)
    with pytest.raises(InputError, match="no transformer layers"):
        parse_layers("1", load_extractor("rgb-histogram"))
