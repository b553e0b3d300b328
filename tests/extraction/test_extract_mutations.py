"""Extract guards that a small bug would slip past (mutation-checked): the weights digest
is taken before compile whatever compile does to the module, and a single non-finite
value in a row (NaN or inf) refuses the chunk."""

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

from plismbench.errors import InputError
from plismbench.extraction import extract
from plismbench.extraction.claims import Claims
from plismbench.extraction.config import resolve_precision
from plismbench.extraction.fingerprint import weights_digest
from plismbench.extraction.writer import ChunkWriter, resume_row
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.spec import ExtractorSpec
from plismbench.utils.io import save_npy


class _Mean(torch.nn.Module):
    """Per-channel means through a 3 x 3 linear map: weights that matter, 3 features."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.float().mean(dim=(2, 3)))


class _Renamed(torch.nn.Module):
    """A stand-in for a compiler that wraps the module under another name."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.wrapped = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wrapped(x)


def _extractor() -> FeatureExtractor:
    spec = ExtractorSpec(name="mean3", loader=lambda *a, **k: _Mean(), embed_dim=3,
                         pooling="model", normalise=False)  # fmt: skip
    torch.manual_seed(0)
    return FeatureExtractor(spec, _Mean())


def test_extract_digests_the_weights_before_compiling(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch, "compile", lambda m, **k: _Renamed(m))
    source = MemorySource(n_slides=1, n_tiles=4, size=8)
    expected = weights_digest(_extractor())
    done = extract(_extractor(), source, tmp_path, workers=0, compile=True)
    meta = json.loads((tmp_path / "mean3" / "SLIDE00" / "meta.json").read_text())
    assert done.weights_sha256 == meta["weights_sha256"] == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_one_non_finite_value_refuses_its_row(tmp_path: Path, bad: float) -> None:
    writer = ChunkWriter("S", tmp_path, chunk_rows=100, start=10, embed_dim=4, layers=[])
    feats = torch.ones(4, 4)
    feats[1, 2] = bad
    try:
        with pytest.raises(InputError, match=r"slide S: non-finite features in rows 11;"):
            writer._block(np.zeros((4, 3)), feats, 10)
        assert writer._block(np.zeros((4, 3)), torch.ones(4, 4), 10).shape == (4, 7)
    finally:
        writer.close()


def test_auto_precision_is_the_specs_on_a_gpu_and_fp32_on_a_cpu() -> None:
    spec = _extractor().spec
    for dtype in ("fp16", "bf16", "fp32"):
        s = replace(spec, dtype=dtype)
        assert resolve_precision(None, s, torch.device("cuda")) == dtype
        assert resolve_precision("auto", s, torch.device("cuda")) == dtype
        assert resolve_precision(None, s, torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", spec, torch.device("cpu")) == "bf16"


def test_resume_stops_at_the_first_gap_and_drops_what_follows(tmp_path: Path) -> None:
    state = {"model": "m"}
    resume_row(tmp_path, state, 2, [], overwrite=False)  # writes state.json
    for first in (0, 4, 12):  # rows 8..11 are missing
        save_npy(tmp_path / f"chunk_{first:09d}.npy", np.zeros((4, 5), dtype=np.float32))
    assert resume_row(tmp_path, state, 2, [], overwrite=False) == 8
    assert not (tmp_path / f"chunk_{12:09d}.npy").exists()


def test_a_slide_this_process_claimed_has_no_other_holder(tmp_path: Path) -> None:
    claims = Claims()
    try:
        assert claims.take(tmp_path) and claims.holder(tmp_path) is None
        assert not Claims().take(tmp_path)  # held: a second claim on it fails
    finally:
        claims.close()
