"""``extract --pooling`` and ``--revision``: the choice is applied, recorded and fingerprinted."""

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
from plismbench.extractors.module import pool_tokens
from plismbench.extractors.registry import (
    get_extractor,
    load_extractor,
    register_extractor,
    unregister_extractor,
)


def _meta(root: Path, folder: str) -> dict:
    return json.loads((root / folder / "SLIDE00" / "meta.json").read_text())


@pytest.mark.parametrize(("pooling", "dim"), [("mean", 192), ("cls+mean", 384)])
def test_pooling_override_is_applied_recorded_and_kept_apart(
    tmp_path: Path, pooling: str, dim: int
) -> None:
    source = MemorySource(n_slides=1, n_tiles=3, size=112)
    extract("vit-tiny-random", source, tmp_path, workers=0)
    result = extract("vit-tiny-random", source, tmp_path, workers=0, pooling=pooling)
    folder = f"vit-tiny-random-{pooling.replace('+', '-')}"
    assert result.model == folder and result.slides_done == ["SLIDE00"]
    meta = _meta(tmp_path, folder)
    assert meta["pooling"] == pooling and meta["embed_dim"] == dim
    assert "--pooling" in meta["pooling_reason"] and meta["precision_default"] == "fp32"
    assert _meta(tmp_path, "vit-tiny-random")["pooling"] == "cls"  # the default stays apart
    feats = np.load(tmp_path / folder / "SLIDE00" / "features.npy")[:, 3:]
    model = load_extractor("vit-tiny-random")
    tiles = torch.from_numpy(source.tiles["SLIDE00"])
    with torch.inference_mode():
        tokens = model.backbone(model.preprocess(tiles))
    expected = pool_tokens(tokens, pooling, 1).numpy()  # type: ignore[arg-type]
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)


def test_pooling_of_a_model_without_tokens_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pooling 'model'"):
        extract("rgb-histogram", MemorySource(n_slides=1, n_tiles=2, size=32), tmp_path,
                workers=0, pooling="cls")  # fmt: skip
    with pytest.raises(InputError, match="pooling 'max' is not one of"):
        extract("vit-tiny-random", MemorySource(n_slides=1, n_tiles=2), tmp_path, pooling="max")


def _set_main(cache: Path, hub_id: str, sha: str) -> None:
    refs = cache / f"models--{hub_id.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(sha)


def test_hub_revision_is_recorded_and_two_revisions_never_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    spec = replace(get_extractor("vit-tiny-random"), name="tiny-hub", hub_id="org/tiny")
    register_extractor(spec, overwrite=True)
    try:
        from plismbench.extractors import registry

        monkeypatch.setattr(registry, "build_backbone", lambda s, **kw: s.loader(s, **kw))
        first, second = "a" * 40, "b" * 40
        _set_main(cache, "org/tiny", first)
        source = MemorySource(n_slides=1, n_tiles=2, size=112)
        extract("tiny-hub", source, tmp_path / "f", workers=0)
        assert _meta(tmp_path / "f", "tiny-hub")["hub_revision"] == first
        _set_main(cache, "org/tiny", second)  # the Hub's main moved on
        with pytest.raises(InputError, match=r"hub_revision aaaaaaaaaaaa \(this run: bbbbbbbbbbbb"):
            extract("tiny-hub", source, tmp_path / "f", workers=0)
        # a pinned commit is recorded as given
        pinned = extract("tiny-hub", source, tmp_path / "g", workers=0, revision="c" * 40)
        assert pinned.slides_done == ["SLIDE00"]
        meta = _meta(tmp_path / "g", "tiny-hub")
        assert meta["hub_revision"] == "c" * 40 and meta["revision_requested"] == "c" * 40
    finally:
        unregister_extractor("tiny-hub")


def test_revision_of_a_model_not_on_the_hub_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--revision: model 'rgb-histogram' is not loaded"):
        extract("rgb-histogram", MemorySource(n_slides=1, n_tiles=2, size=32), tmp_path,
                revision="main")  # fmt: skip


def test_dataset_revision_of_downloaded_h5_reaches_meta(tmp_path: Path) -> None:
    """``download`` writes the dataset commit beside the h5 files; meta.json carries it."""
    from plismbench.data.download import REVISION_FILE
    from plismbench.data.sources import open_source
    from plismbench.data.synth import synth

    root = synth(tmp_path / "h5", n_tiles=2, stainings=["GIV"], scanners=["AT2"])
    (root / REVISION_FILE).write_text(json.dumps({"repo_id": "owkin/x", "revision": "d" * 40}))
    source = open_source(download_dir=root)
    extract("rgb-histogram", source, tmp_path / "f", workers=0)
    meta = json.loads(next((tmp_path / "f" / "rgb-histogram").glob("*/meta.json")).read_text())
    assert meta["source"]["revision"] == "d" * 40 and meta["source"]["repo_id"] == "owkin/x"
