"""The 2026-12-07 extract audit: each defect has a test that failed before its fix."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from extract_memsource import MemorySource

from plismbench.errors import InputError
from plismbench.extraction import extract
from plismbench.extractors.registry import get_extractor, load_extractor
from plismbench.utils.io import write_json


def _meta(root: Path, model: str, slide: str = "SLIDE00") -> dict:
    return json.loads((root / model / slide / "meta.json").read_text())


def test_features_of_another_tile_source_are_not_reused(tmp_path: Path) -> None:
    """Same slide ids, other tiles (8 then 4): the 8-row features must not be kept."""
    extract("rgb-histogram", MemorySource(n_slides=2, n_tiles=8, size=32), tmp_path, workers=0)
    fewer = MemorySource(n_slides=2, n_tiles=4, size=32, seed=1)
    with pytest.raises(InputError, match=r"source_digest.*--overwrite"):
        extract("rgb-histogram", fewer, tmp_path, workers=0)
    redo = extract("rgb-histogram", fewer, tmp_path, workers=0, overwrite=True)
    assert redo.slides_done == ["SLIDE00", "SLIDE01"]
    assert _meta(tmp_path, "rgb-histogram")["tile_count"] == 4


def test_same_tile_ids_other_pixels_are_not_reused(tmp_path: Path) -> None:
    """A synthetic run then a real one with the same slide ids and tile ids: refused."""
    extract("rgb-histogram", MemorySource(n_slides=1, n_tiles=4, size=32, seed=0), tmp_path,
            workers=0)  # fmt: skip
    other = MemorySource(n_slides=1, n_tiles=4, size=32, seed=5)
    with pytest.raises(InputError, match="source_digest"):
        extract("rgb-histogram", other, tmp_path, workers=0)
    # the same source again is still reused (nothing recomputed)
    again = extract("rgb-histogram", MemorySource(n_slides=1, n_tiles=4, size=32, seed=0),
                    tmp_path, workers=0)  # fmt: skip
    assert again.slides_skipped == ["SLIDE00"]


def test_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        extract("rgb-histogram", MemorySource(n_slides=1, n_tiles=4, size=32), tmp_path,
                workers=0)  # fmt: skip
    finally:
        os.umask(old)
    folder = tmp_path / "rgb-histogram"
    slide = folder / "SLIDE00"
    for path in (tmp_path / "a.json", folder / ".fingerprint.json", slide / "meta.json",
                 slide / "features.npy"):  # fmt: skip
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _tiny() -> object:
    spec = replace(get_extractor("h0-mini"), input_size=32)
    torch.manual_seed(0)
    return load_extractor(spec, pretrained=False, depth=1, img_size=32, device="cpu")


def test_precision_check_is_recorded_in_meta(tmp_path: Path) -> None:
    result = extract(_tiny(), MemorySource(n_slides=1, n_tiles=4, size=32), tmp_path, workers=0,
                     precision="bf16", check_precision=True, precision_threshold=0.0)  # fmt: skip
    check = _meta(tmp_path, "h0-mini")["precision_check"]
    assert check["worst_cosine"] == pytest.approx(result.worst_cosine)
    assert check["precision"] == "bf16" and check["against"] == "fp32"
    assert 0.9 < check["worst_cosine"] <= 1.0


def test_precision_check_is_printed_with_progress_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plismbench.cli import app
    from plismbench.cli import extract as cli_extract
    from plismbench.data import synth

    root = synth.synth(tmp_path / "s", n_tiles=4, stainings=["GIV"], scanners=["AT2"],
                       formats=("folder",))  # fmt: skip
    tiles = root / "tiles"
    monkeypatch.setattr(type(cli_extract.err_console), "is_terminal", property(lambda s: True))
    res = CliRunner().invoke(app, ["extract", "-m", "rgb-histogram", "-o", str(tmp_path / "o"),
                                   "--tiles-dir", str(tiles), "--check-precision",
                                   "--precision", "bf16", "-w", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "worst cosine" in res.output


def test_conch_and_plip_run_in_fp32_as_in_the_reference() -> None:
    # the reference calls .module.encode_image / .module.get_image_features, past its autocast
    assert get_extractor("conch").dtype == "fp32"
    assert get_extractor("plip").dtype == "fp32"


def test_the_demo_random_vit_is_a_registry_entry() -> None:
    spec = get_extractor("vit-tiny-random")
    assert spec.embed_dim == 192 and spec.input_size == 112
