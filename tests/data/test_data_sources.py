"""The readers: byte-identical tiles in canonical order, restriction, pickling, bad input."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import N
from PIL import Image
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.data.base import TileSource
from plismbench.data.download import verify
from plismbench.data.sources import H5Source, open_source
from plismbench.errors import InputError

GIV_AT2 = "GIV_AT2_to_GMH_S60.tif"


def _all(src: TileSource, sid: str, batch: int = 2, start: int = 0) -> np.ndarray:
    return np.concatenate([b.tiles for b in src.iter_batches(sid, batch, start)])


def _sources(d: Path) -> dict[str, TileSource]:
    return {
        "h5": open_source(download_dir=d),
        "folder": open_source(tiles_dir=d / "tiles"),
        "parquet": open_source(parquet=d / "parquet"),
    }


def test_readers_byte_identical(synth_dir: Path) -> None:
    srcs = _sources(synth_dir)
    ref = srcs["h5"]
    assert len(ref.slide_ids()) == 4
    for name, src in srcs.items():
        assert isinstance(src, TileSource)
        assert src.slide_ids() == ref.slide_ids(), name
        for sid in ref.slide_ids():
            coords = src.coords(sid)
            assert coords.dtype == np.int64 and coords.shape == (N, 3)
            assert np.array_equal(coords, ref.coords(sid)), name
            order = np.lexsort((coords[:, 2], coords[:, 1]))
            assert np.array_equal(order, np.arange(N)), "canonical (x, y) order"
            tiles = _all(src, sid)
            assert tiles.dtype == np.uint8 and tiles.shape == (N, 224, 224, 3)
            assert np.array_equal(tiles, _all(ref, sid, batch=N)), name
            batches = list(src.iter_batches(sid, 2, start=3))
            assert [b.start for b in batches] == [3]
            assert np.array_equal(batches[0].coords, coords[3:])
            assert np.array_equal(batches[0].tiles, tiles[3:])


def test_parquet_any_row_order(synth_dir: Path, tmp_path: Path) -> None:
    table = pq.read_table(synth_dir / "parquet")
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    pq.write_table(shuffled, tmp_path / "mixed.parquet", row_group_size=7)
    src, ref = open_source(parquet=tmp_path / "mixed.parquet"), open_source(download_dir=synth_dir)
    for sid in ref.slide_ids():
        assert np.array_equal(src.coords(sid), ref.coords(sid))
        assert np.array_equal(_all(src, sid, start=1), _all(ref, sid, start=1))


def _read_first(src: TileSource) -> np.ndarray:
    return next(src.iter_batches(GIV_AT2, N)).tiles


def test_h5_source_pickles_and_forks(synth_dir: Path) -> None:
    src = open_source(download_dir=synth_dir)
    expected = _read_first(src)  # the parent now holds an open handle
    clone = pickle.loads(pickle.dumps(src))
    assert np.array_equal(_read_first(clone), expected)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert np.array_equal(pool.apply(_read_first, (src,)), expected)
    assert np.array_equal(_read_first(src), expected)


def test_slides_restriction(synth_dir: Path) -> None:
    src = open_source(download_dir=synth_dir, slides=[GIV_AT2])
    assert src.slide_ids() == [GIV_AT2]
    with pytest.raises(InputError, match=r"slide 'MY_SQ_to_GMH_S60\.tif' not found"):
        open_source(parquet=synth_dir / "parquet", slides=["MY_SQ_to_GMH_S60.tif"]).slide_ids()


def test_exactly_one_source(synth_dir: Path) -> None:
    with pytest.raises(InputError, match="exactly one"):
        open_source()
    with pytest.raises(InputError, match="--download-dir, --tiles-dir"):
        open_source(download_dir=synth_dir, tiles_dir=synth_dir / "tiles")


# -- bad input ------------------------------------------------------------------------------
@pytest.fixture
def h5_copy(synth_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "h5"
    d.mkdir()
    for p in synth_dir.glob("*.h5"):
        shutil.copy(p, d / p.name)
    return d


def test_truncated_h5(h5_copy: Path) -> None:
    path = h5_copy / f"{GIV_AT2}.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(InputError, match=rf"{path.name}: cannot read h5 file \(truncated"):
        open_source(download_dir=h5_copy).coords(GIV_AT2)
    report = verify(h5_copy, stainings=["GIV", "GM"], scanners=["AT2", "S60"], n_tiles=N)
    assert not report.complete and list(report.bad) == [GIV_AT2]
    assert "truncated" in report.summary()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros((224, 224, 3), np.float32), "is float32 .*expected uint8"),
        (np.zeros((224, 224), np.uint8), r"is uint8 \(224, 224\), expected uint8 \(H, W, 3\)"),
        (np.zeros((100, 100, 3), np.uint8), r"has shape \(100, 100, 3\), expected \(224, 224, 3\)"),
    ],
)
def test_h5_bad_tile(h5_copy: Path, data: np.ndarray, match: str) -> None:
    with h5py.File(h5_copy / f"{GIV_AT2}.h5", "a") as f:
        del f["tile_16_224_224"]
        f["tile_16_224_224"] = data
    src = open_source(download_dir=h5_copy)
    with pytest.raises(InputError, match=rf"{GIV_AT2}.h5: tile 'tile_16_224_224' {match}"):
        _all(src, GIV_AT2)


def test_h5_unparsable_and_different_tiles(h5_copy: Path) -> None:
    with h5py.File(h5_copy / "GM_S60_to_GMH_S60.tif.h5", "a") as f:
        f["tile_16_9999_0"] = np.zeros((224, 224, 3), np.uint8)
    src = open_source(download_dir=h5_copy)
    with pytest.raises(
        InputError,
        match=r"GM_S60.*differ from those of .*GIV_AT2.*1 extra \(e.g. 'tile_16_9999_0'\)",
    ):
        src.coords("GM_S60_to_GMH_S60.tif")
    with h5py.File(h5_copy / "GIV_S60_to_GMH_S60.tif.h5", "a") as f:
        f["thumbnail"] = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(
        InputError, match=r"GIV_S60_to_GMH_S60\.tif\.h5: tile id 'thumbnail' cannot"
    ):
        open_source(download_dir=h5_copy).coords("GIV_S60_to_GMH_S60.tif")


def test_folder_duplicates_and_corrupt(synth_dir: Path, tmp_path: Path) -> None:
    tiles = tmp_path / "tiles"
    shutil.copytree(synth_dir / "tiles", tiles)
    slide = tiles / GIV_AT2
    Image.open(slide / "tile_16_0_0.png").convert("RGB").save(slide / "tile_16_0_0.jpg")
    with pytest.raises(InputError, match="duplicate tile 'tile_16_0_0'"):
        open_source(tiles_dir=tiles).coords(GIV_AT2)
    (slide / "tile_16_0_0.jpg").unlink()
    (slide / "tile_16_0_224.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"tile_16_0_224.png: cannot decode tile 'tile_16_0_224'"):
        _all(open_source(tiles_dir=tiles), GIV_AT2)


def test_corrupt_parquet(synth_dir: Path, tmp_path: Path) -> None:
    src = next((synth_dir / "parquet").rglob("*.parquet"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(InputError, match=r"bad.parquet: cannot read parquet file \(truncated"):
        open_source(parquet=bad).slide_ids()
    table = pq.read_table(src)
    pq.write_table(table.drop_columns(["png"]), tmp_path / "nopng.parquet")
    with pytest.raises(InputError, match=r"nopng\.parquet: parquet file lacks column.* png"):
        open_source(parquet=tmp_path / "nopng.parquet").slide_ids()
    dup = pa.concat_tables([table, table.slice(0, 1)])
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(InputError, match=r"dup.parquet \(slide .*\): duplicate tile"):
        open_source(parquet=tmp_path / "dup.parquet").coords(table["slide_id"][0].as_py())


def test_missing_folder_cli_exit(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["synth", "--out-dir", str(tmp_path / "o"), "--from", str(tmp_path / "nope")]
    )
    assert res.exit_code != 0
    assert "nope: --from folder not found" in res.output
    with pytest.raises(InputError, match="download folder not found"):
        H5Source(tmp_path / "nope")


def test_sources_describe_themselves_for_meta_json(synth_dir: Path) -> None:
    from plismbench.extraction.engine import describe_source

    srcs = _sources(synth_dir)
    assert describe_source(srcs["h5"]) == {
        "type": "h5", "download_dir": str(synth_dir.resolve())
    }  # fmt: skip
    assert describe_source(srcs["folder"]) == {
        "type": "folder", "tiles_dir": str((synth_dir / "tiles").resolve())
    }  # fmt: skip
    described = describe_source(srcs["parquet"])
    assert described["type"] == "parquet" and described["files"]
    assert all(Path(f).is_file() for f in described["files"])


def test_handles_are_per_thread_and_parallel_reads_agree(synth_dir: Path) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    src = _sources(synth_dir)["parquet"]
    sid = src.slide_ids()[0]
    want = _all(src, sid)
    barrier, grabbed = threading.Barrier(2), []

    def grab() -> None:
        barrier.wait()
        grabbed.append(src._parquet(0))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=grab) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert grabbed[0] is not grabbed[1]  # one ParquetFile per thread, never shared
    assert src._parquet(0) is src._parquet(0)  # type: ignore[attr-defined]  # reused within one
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda start: _all(src, sid, start=start), [0, 0, 1, 2]))
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want)
    np.testing.assert_array_equal(got[2], want[1:])
    np.testing.assert_array_equal(got[3], want[2:])


def test_h5_direct_reads_and_h5py_fallback_agree(synth_dir: Path, h5_copy: Path) -> None:
    # Rewrite one slide with gzip-compressed, chunked tiles: no direct offsets, so those
    # tiles go through h5py; the other slides take the direct os.preadv path.
    path = h5_copy / f"{GIV_AT2}.h5"
    with h5py.File(synth_dir / f"{GIV_AT2}.h5", "r") as src_file, h5py.File(path, "w") as f:
        for name in src_file:
            f.create_dataset(name, data=src_file[name][()], compression="gzip", chunks=True)
    direct = open_source(download_dir=synth_dir)
    mixed = open_source(download_dir=h5_copy)
    other = next(s for s in direct.slide_ids() if s != GIV_AT2)
    for sid in (GIV_AT2, other):
        np.testing.assert_array_equal(_all(mixed, sid), _all(direct, sid))
        np.testing.assert_array_equal(_all(mixed, sid, start=3), _all(direct, sid)[3:])
    assert (mixed._layout(GIV_AT2)[1] == -1).all()  # type: ignore[attr-defined]  # h5py
    assert (mixed._layout(other)[1] >= 0).all()  # type: ignore[attr-defined]  # direct


def test_h5_truncated_tile_data_names_the_tile(h5_copy: Path) -> None:
    path = h5_copy / f"{GIV_AT2}.h5"
    src = open_source(download_dir=h5_copy)
    assert list(src.iter_batches(GIV_AT2, 1))  # fills the layout
    _, offsets = src._layout(GIV_AT2)  # type: ignore[attr-defined]
    last = int(np.argmax(offsets))
    with open(path, "r+b") as fh:  # cut the file inside the last tile's bytes
        fh.truncate(int(offsets[last]) + 10)
    fresh = open_source(download_dir=h5_copy)
    pattern = rf"{GIV_AT2}.h5: cannot read (tile '\w+'|h5 file) \(truncated"
    with pytest.raises(InputError, match=pattern):
        _all(fresh, GIV_AT2)
