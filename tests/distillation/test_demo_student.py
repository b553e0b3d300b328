"""``run --distill-demo``: the demo's random ViT distilled into a student that extract loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plismbench import pipeline
from plismbench.data.sources import open_source
from plismbench.data.synth import synth
from plismbench.distillation import demo
from plismbench.errors import InputError
from plismbench.extraction import extract
from plismbench.extractors.registry import get_extractor


def test_demo_student_is_distilled_reused_and_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEMO_STEPS", 2)
    monkeypatch.setattr(demo, "DEMO_BATCH", 4)
    synth(tmp_path / "data", n_tiles=4, stainings=["GIV"], scanners=["AT2", "P"])
    tiles = open_source(download_dir=tmp_path / "data")
    pipeline._register_demo_models()
    student = demo.distill_demo_student(tmp_path / "distill", tiles, pipeline.RANDOM_VIT.name,
                                        device="cpu")  # fmt: skip
    assert (student / "model.safetensors").is_file()
    stamp = (student / "model.safetensors").stat().st_mtime_ns
    again = demo.distill_demo_student(tmp_path / "distill", tiles, "never-loaded", device="cpu")
    assert again == student and (student / "model.safetensors").stat().st_mtime_ns == stamp
    spec = get_extractor(str(student))
    extract(str(student), tiles, tmp_path / "features", device="cpu", progress=False)
    feats = np.load(tmp_path / "features" / spec.folder / tiles.slide_ids()[0] / "features.npy")
    assert feats.shape == (4, 3 + spec.embed_dim) and np.isfinite(feats).all()


def test_distill_demo_needs_the_demo(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--distill-demo"):
        pipeline.run(["rgb-histogram"], source=str(tmp_path), output_dir=tmp_path / "o",
                     distill_demo=True, progress=False)  # fmt: skip
