"""extract's device path on a GPU: pinned uint8 batches, autocast, layers; skipped without CUDA."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract_memsource import MemorySource

from plismbench.extraction import extract
from plismbench.extractors.registry import get_extractor, load_extractor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _vit(device: str):
    spec = replace(get_extractor("h0-mini"), input_size=32)
    torch.manual_seed(0)
    return load_extractor(spec, pretrained=False, depth=2, img_size=32, device=device)


def test_cuda_histogram_equals_cpu(tmp_path: Path) -> None:
    source = MemorySource(n_slides=2, n_tiles=10, size=32)
    gpu = extract("hed-histogram", source, tmp_path / "gpu", device="cuda", batch_size=4)
    cpu = extract("hed-histogram", source, tmp_path / "cpu", device="cpu", batch_size=4)
    assert gpu.device.startswith("cuda") and cpu.device == "cpu"
    for sid in source.slide_ids():
        a = np.load(tmp_path / "gpu" / "hed-histogram" / sid / "features.npy")
        b = np.load(tmp_path / "cpu" / "hed-histogram" / sid / "features.npy")
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_vit_matches_cpu_fp32_with_layers(tmp_path: Path, precision: str) -> None:
    source = MemorySource(n_slides=1, n_tiles=12, size=32)
    ref = extract(_vit("cpu"), source, tmp_path / "cpu", layers="1,2", batch_size=4, workers=0)
    assert ref.precision == "fp32"
    got = extract(_vit("cuda"), source, tmp_path / "gpu", precision=precision, layers="1,2",
                  batch_size=4, workers=2)  # fmt: skip
    assert got.precision == precision and got.weights_sha256 == ref.weights_sha256
    slide = Path("h0-mini") / "SLIDE00"
    meta = json.loads((tmp_path / "gpu" / slide / "meta.json").read_text())
    assert meta["device"].startswith("cuda") and meta["precision"] == precision
    for rel in ("features.npy", "layers/1/features.npy", "layers/2/features.npy"):
        a = torch.from_numpy(np.load(tmp_path / "cpu" / slide / rel))
        b = torch.from_numpy(np.load(tmp_path / "gpu" / slide / rel))
        assert torch.equal(a[:, :3], b[:, :3])
        cos = torch.nn.functional.cosine_similarity(a[:, 3:].double(), b[:, 3:].double(), dim=1)
        assert float(cos.min()) > (0.999 if precision == "fp32" else 0.98), rel


def test_cuda_auto_precision_is_the_spec_dtype(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=4, size=32)
    spec = replace(get_extractor("h0-mini"), input_size=32)
    model = load_extractor(spec, pretrained=False, depth=1, img_size=32, device="cuda")
    result = extract(model, source, tmp_path, precision="auto", batch_size=4)
    assert result.precision == spec.dtype
