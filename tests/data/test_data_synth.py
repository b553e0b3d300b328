"""The synthetic PLISM generator: deterministic, realistic shifts, formats, speed, --from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.data.catalogue import N_SLIDES, STAININGS, plism_slide_ids
from plismbench.data.sources import open_source
from plismbench.data.synth import (
    ScannerModel,
    StainingModel,
    base_tiles,
    hed_to_rgb,
    rgb_to_hed,
    synth,
)
from plismbench.errors import InputError


def _tiles(d: Path, sid: str) -> np.ndarray:
    return np.concatenate([b.tiles for b in open_source(download_dir=d).iter_batches(sid, 64)])


def test_hed_round_trip() -> None:
    _, tiles = base_tiles(2)
    identity = hed_to_rgb(rgb_to_hed(tiles), _rows())
    assert np.abs(identity * 255 - tiles).max() < 1.0


def _rows() -> np.ndarray:
    from plismbench.data.synth import _RGB_FROM_HED, _normalise_rows

    return _normalise_rows(_RGB_FROM_HED)


def test_models_are_realistic_and_deterministic() -> None:
    for name in ("GIV", "MY"):
        m = StainingModel.make(name, 3)
        assert np.all((m.alpha[:2] >= 0.8) & (m.alpha[:2] <= 1.2))
        assert np.all(np.abs(m.beta) < 0.01)
        assert np.array_equal(m.alpha, StainingModel.make(name, 3).alpha)
    s = ScannerModel.make("AT2", 0)
    assert 0.9 <= s.gamma <= 1.1 and 75 <= s.jpeg_quality <= 95
    assert not np.array_equal(s.matrix, ScannerModel.make("AT2", 1).matrix)


def test_deterministic_per_seed(tmp_path: Path) -> None:
    kw = {"n_tiles": 3, "stainings": ["GM", "KR"], "scanners": ["P"]}
    a, b, c = (synth(tmp_path / n, seed=s, **kw) for n, s in (("a", 7), ("b", 7), ("c", 8)))  # type: ignore[arg-type]
    sid = "KR_P_to_GMH_S60.tif"
    assert np.array_equal(_tiles(a, sid), _tiles(b, sid))
    assert not np.array_equal(_tiles(a, sid), _tiles(c, sid))
    shift = np.abs(_tiles(a, sid).astype(float) - _tiles(a, "GM_P_to_GMH_S60.tif")).mean()
    assert 1.0 < shift < 40.0, "stainings differ, but realistically"
    assert not list(a.glob(".*")), "no temporary files left"


def test_full_catalogue(tmp_path: Path) -> None:
    """All 91 slides (timing belongs in benchmarks/, not in an assertion)."""
    out = synth(tmp_path / "all", n_tiles=12)
    src = open_source(download_dir=out)
    assert src.slide_ids() == plism_slide_ids() and len(src.slide_ids()) == N_SLIDES
    assert src.coords(src.slide_ids()[-1]).shape == (12, 3)


def test_from_own_tiles(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    rng = np.random.default_rng(0)
    for x, y in ((64, 0), (0, 64), (0, 0)):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(
            own / f"tile_0_{x}_{y}.png"
        )
    res = CliRunner().invoke(
        app,
        ["synth", "--out-dir", str(tmp_path / "o"), "--from", str(own), "--stainings", "HR",
         "--scanners", "SQ,S210", "--format", "folder,parquet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    src = open_source(tiles_dir=tmp_path / "o" / "tiles")
    assert src.slide_ids() == ["HR_S210_to_GMH_S60.tif", "HR_SQ_to_GMH_S60.tif"]
    assert src.coords("HR_SQ_to_GMH_S60.tif").tolist() == [[0, 0, 0], [0, 0, 64], [0, 64, 0]]
    assert next(src.iter_batches("HR_SQ_to_GMH_S60.tif", 8)).tiles.shape == (3, 64, 64, 3)
    pq_src = open_source(parquet=tmp_path / "o" / "parquet")
    a = next(pq_src.iter_batches("HR_SQ_to_GMH_S60.tif", 8)).tiles
    assert np.array_equal(a, next(src.iter_batches("HR_SQ_to_GMH_S60.tif", 8)).tiles)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format 'zip'"):
        synth(tmp_path, formats=["zip"])
    with pytest.raises(InputError, match="unknown scanner 'X'"):
        synth(tmp_path, scanners=["X"])
    own = tmp_path / "own"
    own.mkdir()
    Image.new("RGB", (32, 32)).save(own / "a.png")
    Image.new("RGB", (16, 16)).save(own / "b.png")
    with pytest.raises(InputError, match=r"b\.png: image is 16x16 px, expected 32x32"):
        synth(tmp_path / "o", from_dir=own)


def test_rerun_replaces_parquet_shards(tmp_path: Path) -> None:
    """A second synth into the same folder leaves no stale shards (stale rows would duplicate)."""
    out = tmp_path / "o"
    kw = {"n_tiles": 2, "formats": ["parquet"], "scanners": ["P"]}
    synth(out, stainings=list(STAININGS[:9]), **kw)  # type: ignore[arg-type]
    assert len(list((out / "parquet" / "data").glob("*.parquet"))) == 2
    synth(out, stainings=["GIV"], seed=1, **kw)  # type: ignore[arg-type]
    assert [p.name for p in (out / "parquet" / "data").glob("*.parquet")] == [
        "train-00000-of-00001.parquet"
    ]
    src = open_source(parquet=out / "parquet")
    assert src.slide_ids() == ["GIV_P_to_GMH_S60.tif"]
    assert src.coords("GIV_P_to_GMH_S60.tif").shape == (2, 3)
