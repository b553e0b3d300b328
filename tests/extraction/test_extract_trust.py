"""Extract never reuses or writes wrong features: fingerprints, digests, non-finite rows, order."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract_memsource import MemorySource

from plismbench.errors import InputError
from plismbench.extraction import ExtractConfig, extract
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.extractors.spec import ExtractorSpec


def _tiny_vit(seed: int) -> FeatureExtractor:
    """H0-mini's spec and block type, one block, 32 px inputs: fast random weights."""
    spec = replace(get_extractor("h0-mini"), input_size=32)
    torch.manual_seed(seed)
    return load_extractor(spec, pretrained=False, depth=1, img_size=32, device="cpu")


def _meta(root: Path, model: str, slide: str = "SLIDE00") -> dict:
    return json.loads((root / model / slide / "meta.json").read_text())


def test_precision_change_over_finished_slides_is_refused(tmp_path: Path) -> None:
    source = MemorySource(n_slides=2, n_tiles=4, size=32)
    extract("rgb-histogram", source, tmp_path, precision="fp32", workers=0)
    with pytest.raises(InputError, match=r"precision fp32 \(this run: bf16\).*--overwrite"):
        extract("rgb-histogram", source, tmp_path, precision="bf16", workers=0)
    assert _meta(tmp_path, "rgb-histogram")["precision"] == "fp32"  # nothing was touched
    redo = extract("rgb-histogram", source, tmp_path, precision="bf16", overwrite=True, workers=0)
    assert redo.slides_done == ["SLIDE00", "SLIDE01"]
    assert {_meta(tmp_path, "rgb-histogram", s)["precision"] for s in source.slides} == {"bf16"}


def test_new_weights_over_finished_slides_are_refused(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=4, size=32)
    first, second = _tiny_vit(0), _tiny_vit(1)
    extract(first, source, tmp_path, workers=0)
    with pytest.raises(InputError, match="weights_sha256"):
        extract(second, source, tmp_path, workers=0)
    done = extract(second, source, tmp_path, workers=0, overwrite=True)
    assert done.slides_done == ["SLIDE00"]
    assert _meta(tmp_path, "h0-mini")["weights_sha256"] == done.weights_sha256


def test_features_of_another_model_planted_in_the_folder_are_refused(tmp_path: Path) -> None:
    source = MemorySource(n_slides=2, n_tiles=4, size=32)
    extract("hed-histogram", source, tmp_path, workers=0)
    (tmp_path / "rgb-histogram").mkdir()
    shutil.copytree(tmp_path / "hed-histogram" / "SLIDE01", tmp_path / "rgb-histogram" / "SLIDE01")
    planted = tmp_path / "rgb-histogram" / "SLIDE01" / "meta.json"
    with pytest.raises(InputError, match=rf"{planted}.*model hed-histogram"):
        extract("rgb-histogram", source, tmp_path, workers=0)
    # refused before any work: the slide before the planted one was not extracted
    assert not (tmp_path / "rgb-histogram" / "SLIDE00" / "features.npy").exists()
    # features.npy without any meta.json is not trusted either
    planted.unlink()
    with pytest.raises(InputError, match=r"no valid meta\.json"):
        extract("rgb-histogram", source, tmp_path, workers=0)
    extract("rgb-histogram", source, tmp_path, workers=0, overwrite=True)
    assert _meta(tmp_path, "rgb-histogram", "SLIDE01")["model"] == "rgb-histogram"


def test_partial_chunks_of_another_setting_are_not_resumed(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=8, size=32)
    extract("rgb-histogram", source, tmp_path, workers=0, precision="bf16", chunk_rows=2)
    slide = tmp_path / "rgb-histogram" / "SLIDE00"
    # Turn the finished slide back into an interrupted bf16 one (chunks, no features.npy).
    partial = slide / ".partial"
    partial.mkdir()
    feats = np.load(slide / "features.npy")
    np.save(partial / "chunk_000000000.npy", feats[:4])
    state = {k: v for k, v in _meta(tmp_path, "rgb-histogram").items()}
    state["layers"] = []
    (partial / "state.json").write_text(json.dumps(state))
    (slide / "features.npy").unlink()
    (slide / "meta.json").unlink()
    (tmp_path / "rgb-histogram" / ".fingerprint.json").unlink(missing_ok=True)
    with pytest.raises(InputError, match=r"partial features of another setting.*--overwrite"):
        extract("rgb-histogram", source, tmp_path, workers=0, precision="fp32")
    out = extract("rgb-histogram", source, tmp_path, workers=0, precision="fp32", overwrite=True)
    assert out.tiles == 8  # nothing of the bf16 chunks was reused


def test_weights_digest_does_not_change_with_compile(tmp_path: Path, monkeypatch) -> None:
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m: compile_(m, backend="eager"))
    source = MemorySource(n_slides=1, n_tiles=2, size=32)

    def run(folder: str, compile: bool) -> str:
        extract(_tiny_vit(0), source, tmp_path / folder, workers=0, compile=compile)
        return str(_meta(tmp_path / folder, "h0-mini")["weights_sha256"])

    assert run("plain", False) == run("compiled", True)


class _NaNRows(torch.nn.Module):
    """Features that are NaN for tiles whose first pixel is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x.float().mean(dim=(2, 3))
        feats[x[:, 0, 0, 0] > 128] = float("nan")
        return feats


def test_non_finite_features_are_refused_naming_slide_and_rows(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=6, size=8)
    source.tiles["SLIDE00"][:, 0, 0, 0] = 0
    source.tiles["SLIDE00"][[2, 5], 0, 0, 0] = 255
    spec = ExtractorSpec(name="nan-rows", loader=lambda *a, **k: _NaNRows(), embed_dim=3,
                         pooling="model", normalise=False)  # fmt: skip
    model = FeatureExtractor(spec, _NaNRows())
    with pytest.raises(InputError, match=r"slide SLIDE00: non-finite features in rows 2, 5"):
        extract(model, source, tmp_path, workers=0, batch_size=6)
    assert not (tmp_path / "nan-rows" / "SLIDE00" / "features.npy").exists()


def test_rows_follow_numeric_tile_order_beyond_1000(tmp_path: Path) -> None:
    """String order (tile_16_1120_0 < tile_16_224_0) must never reach features.npy."""
    from PIL import Image

    from plismbench.data.sources import open_source

    xs, ys = [0, 224, 896, 1120, 2240], [0, 448, 1344]
    tiles = tmp_path / "tiles"
    rng = np.random.default_rng(0)
    images = {}
    for slide in ("S1", "S2"):
        (tiles / slide).mkdir(parents=True)
        for x in xs:
            for y in ys:
                img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                images[slide, x, y] = img
                Image.fromarray(img).save(tiles / slide / f"tile_16_{x}_{y}.png")
    extract("rgb-histogram", open_source(tiles_dir=tiles), tmp_path / "out", workers=2,
            batch_size=4)  # fmt: skip
    oracle = load_extractor("rgb-histogram")
    for slide in ("S1", "S2"):
        feats = np.load(tmp_path / "out" / "rgb-histogram" / slide / "features.npy")
        expected = [(16, x, y) for x in xs for y in ys]  # numeric (x, y) order
        assert feats[:, :3].astype(int).tolist() == [list(c) for c in expected]
        batch = torch.from_numpy(np.stack([images[slide, x, y] for _, x, y in expected]))
        np.testing.assert_allclose(feats[:, 3:], oracle(batch).numpy(), atol=1e-6)


def test_config_object_and_keywords_agree(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=3, size=16)
    cfg = ExtractConfig(batch_size=2, workers=0)
    result = extract("rgb-histogram", source, tmp_path, cfg, chunk_rows=1)
    assert result.slides_done == ["SLIDE00"]
    with pytest.raises(TypeError, match="unknown options: nope"):
        extract("rgb-histogram", source, tmp_path, nope=1)


class _DroppingSource(MemorySource):
    """The network goes away after the first batch of SLIDE00."""

    def iter_batches(self, slide_id, batch_size, start=0):  # type: ignore[no-untyped-def]
        for batch in super().iter_batches(slide_id, batch_size, start):
            if batch.start > 0:
                raise ConnectionError("Connection reset by peer")
            yield batch


def test_a_source_failing_mid_slide_is_one_line_and_resumable(tmp_path: Path) -> None:
    source = _DroppingSource(n_slides=1, n_tiles=6, size=16)
    with pytest.raises(InputError, match=r"reading slide SLIDE00 failed \(ConnectionError.*resume"):
        extract("rgb-histogram", source, tmp_path, workers=0, batch_size=2, chunk_rows=2)
    slide = tmp_path / "rgb-histogram" / "SLIDE00"
    assert not (slide / "features.npy").exists() and list((slide / ".partial").glob("chunk_*"))
    again = MemorySource(n_slides=1, n_tiles=6, size=16)
    result = extract("rgb-histogram", again, tmp_path, workers=0, batch_size=2, chunk_rows=2)
    # 4 rows after the checkpoint, plus the first tile read once for the source digest
    assert result.slides_done == ["SLIDE00"] and again.reads == 4 + 1
