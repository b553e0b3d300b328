"""Tile corpora: every format gives the same tiles for the same content; clear errors; PLISM."""

from __future__ import annotations

import gzip
import io
import tarfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from plismbench.distillation.corpus import PlismCorpusWarning, open_corpus
from plismbench.distillation.corpus import tar as tar_module
from plismbench.errors import InputError

N = 12


@pytest.fixture(autouse=True)
def _index_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLISMBENCH_CORPUS_CACHE", str(tmp_path / "index-cache"))


def _png(tile: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="PNG")
    return buf.getvalue()


def _tiles() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (16 + i % 3, 20, 3), dtype=np.uint8) for i in range(N)]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same 12 tiles (in the same order) in every supported layout."""
    root = tmp_path_factory.mktemp("corpora")
    tiles = _tiles()
    pngs = [_png(t) for t in tiles]
    half = N // 2
    specs: dict[str, str] = {}
    # folder: nested, arbitrary names; sorted path order is the tile order
    for i, data in enumerate(pngs):
        sub = root / "folder" / ("a/b" if i < half else "c")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"patch_{i:03d}.png").write_bytes(data)
    (root / "folder" / "c" / "notes.txt").write_text("not a tile")
    (root / "folder" / ".hidden.png").write_bytes(pngs[0])
    specs["folder"] = str(root / "folder")
    # parquet: plain bytes in one shard, HF Image structs in another, small row groups
    (root / "pq").mkdir()
    pq.write_table(pa.table({"image": pngs[:half], "label": list(range(half))}),
                   root / "pq" / "train-0.parquet", row_group_size=4)  # fmt: skip
    structs = [{"bytes": d, "path": None} for d in pngs[half:]]
    pq.write_table(pa.table({"image": structs}), root / "pq" / "train-1.parquet",
                   row_group_size=4)  # fmt: skip
    specs["parquet"] = str(root / "pq")
    specs["parquet-glob"] = str(root / "pq" / "train-*.parquet")
    # tar: webdataset samples (an image and a json per key), two shards
    (root / "wds").mkdir()
    for s, part in enumerate((range(half), range(half, N))):
        with tarfile.open(root / "wds" / f"shard-{s:04d}.tar", "w") as tar:
            for i in part:
                _add(tar, f"sub/key{i:03d}.json", b"{}")
                _add(tar, f"sub/key{i:03d}.png", pngs[i])
    specs["tar"] = str(root / "wds")
    # h5: a contiguous array, a chunked gzip array (tiles of one shape per dataset), encoded
    (root / "h5").mkdir()
    with h5py.File(root / "h5" / "a.h5", "w") as f:
        for i in range(N):
            f.create_dataset(f"tiles/{i:03d}", data=tiles[i][None])
    specs["h5"] = str(root / "h5")
    with h5py.File(root / "enc.h5", "w") as f:
        ds = f.create_dataset("image", (N,), dtype=h5py.vlen_dtype(np.uint8))
        for i, data in enumerate(pngs):
            ds[i] = np.frombuffer(data, np.uint8)
        f.create_dataset("labels", data=np.arange(N))
    specs["h5-encoded"] = str(root / "enc.h5")
    with h5py.File(root / "opaque.h5", "w") as f:  # no "image": every tile dataset, by path
        f.create_dataset("names", data=[f"t{i}".encode() for i in range(N)])
        f.create_dataset("slide", data=np.array([f"s{i}" for i in range(N)], dtype=object),
                         dtype=h5py.string_dtype())  # fmt: skip
        longest = max(len(d) for d in pngs)
        blobs = np.zeros(N, dtype=f"V{longest}")  # PNG ignores the zero padding after IEND
        for i, data in enumerate(pngs):
            blobs[i] = np.void(data.ljust(longest, b"\0"))
        f.create_dataset("x/blobs", data=blobs)
    specs["h5-opaque"] = str(root / "opaque.h5")
    with h5py.File(root / "arr.h5", "w") as f:
        same = np.stack([t[:16] for t in tiles])
        f.create_dataset("a", data=same[:5])
        f.create_dataset("b", data=same[5:], chunks=(1, 16, 20, 3), compression="gzip")
    specs["h5-array"] = str(root / "arr.h5")
    return specs


@pytest.mark.parametrize(
    "kind",
    ["folder", "parquet", "parquet-glob", "tar", "h5", "h5-encoded", "h5-opaque", "h5-array"],
)
def test_every_format_yields_the_same_tiles(corpora: dict[str, str], kind: str) -> None:
    expected = _tiles()
    if kind == "h5-array":
        expected = [t[:16] for t in expected]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not PLISM: no warning
        corpus = open_corpus(corpora[kind])
    assert len(corpus) == N and not corpus.is_plism
    assert corpus.kind == kind.split("-")[0]
    got = corpus.read(range(N))
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == np.uint8 and np.array_equal(a, b)
    picks = [7, 0, 11, 7, 3]  # random access, repeats allowed
    for a, i in zip(corpus.read(picks), picks, strict=True):
        assert np.array_equal(a, expected[i])
    info = corpus.describe()
    assert info["n_tiles"] == N and info["kind"] == corpus.kind and len(info["digest"]) == 32
    assert open_corpus(corpora[kind]).describe() == info  # deterministic


def test_arbitrary_names_nested_and_sorted(tmp_path: Path) -> None:
    tiles = _tiles()
    names = ["patch_123.png", "deep/er/slide 1/tile(7).tif", "b.webp", "deep/A.PNG", "z/0.jpeg"]
    for name, tile in zip(names, tiles, strict=False):
        path = tmp_path / "t" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".tif": "TIFF", ".webp": "WEBP", ".jpeg": "JPEG"}.get(path.suffix, "PNG")
        Image.fromarray(tile).save(path, format=fmt, lossless=True)
    corpus = open_corpus(tmp_path / "t")
    order = ["b.webp", "deep/A.PNG", "deep/er/slide 1/tile(7).tif", "patch_123.png", "z/0.jpeg"]
    assert [corpus.name(i) for i in range(len(corpus))] == order  # type: ignore[attr-defined]
    got = corpus.read(range(5))
    for i, name in enumerate(order):
        expected = np.asarray(Image.open(tmp_path / "t" / name).convert("RGB"))
        assert np.array_equal(got[i], expected)
    before = corpus.describe()["digest"]
    Image.fromarray(tiles[5]).save(tmp_path / "t" / "new.png")
    assert open_corpus(tmp_path / "t").describe()["digest"] != before


def test_tar_index_is_cached_and_keyed_on_content(
    corpora: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = tmp_path / "one.tar"
    shard.write_bytes(Path(corpora["tar"], "shard-0000.tar").read_bytes())
    first = open_corpus(shard).read(range(6))

    def no_scan(path: Path) -> None:
        raise AssertionError(f"{path} rescanned")

    monkeypatch.setattr(tar_module, "index_tar", no_scan)
    again = open_corpus(shard).read(range(6))
    assert all(np.array_equal(a, b) for a, b in zip(again, first, strict=True))
    with tarfile.open(shard, "a") as tar:  # same name, new content: the cache must not serve it
        _add(tar, "extra.png", _png(_tiles()[0]))
    with pytest.raises(AssertionError, match="rescanned"):
        open_corpus(shard)
    monkeypatch.undo()
    monkeypatch.setenv("PLISMBENCH_CORPUS_CACHE", str(tmp_path / "index-cache"))
    assert len(open_corpus(shard)) == 7
    for cached in (tmp_path / "index-cache").glob("*.npz"):
        cached.write_bytes(b"damaged")  # a damaged cache entry is rebuilt, not an error
    assert len(open_corpus(shard)) == 7


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_fast_tar_scan_agrees_with_tarfile(tmp_path: Path, fmt: int) -> None:
    """Long names (ustar prefix, pax or GNU headers), folders, links: same index as tarfile."""
    shard = tmp_path / "s.tar"
    data = _png(_tiles()[1])
    with tarfile.open(shard, "w", format=fmt) as tar:
        for i in range(5):
            _add(tar, f"{'long-folder-name/' * 8}k{i}.png", data)  # 140 characters
            _add(tar, f"k{i}.cls", b"1")
        folder = tarfile.TarInfo("dir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        link = tarfile.TarInfo("dir/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "k0.png"
        tar.addfile(link)
        _add(tar, "é/ünï.JPG.png", data)
    fast = tar_module.index_tar(shard)
    slow = tar_module._samples(tar_module._scan_tarfile(shard))
    assert len(fast["offsets"]) == 6
    for key in ("offsets", "sizes"):
        assert np.array_equal(fast[key], slow[key])
    assert all(np.array_equal(t, _tiles()[1]) for t in open_corpus(shard).read(range(6)))


def _one_line(exc: pytest.ExceptionInfo[InputError], where: Path | str) -> None:
    text = str(exc.value)
    assert "\n" not in text and str(where) in text


def test_bad_input_is_one_line(tmp_path: Path, corpora: dict[str, str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "bad.h5").write_bytes(b"not h5")
    (tmp_path / "x.csv").write_text("a,b")
    tgz = tmp_path / "gz" / "shard.tar"
    tgz.parent.mkdir()
    tgz.write_bytes(gzip.compress(Path(corpora["tar"], "shard-0000.tar").read_bytes()))
    broken = tmp_path / "broken" / "a.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG garbage")
    cases = [
        (tmp_path / "missing", "not found"),
        (tmp_path / "empty", "no tiles"),
        (tmp_path / "text", "no tiles"),
        (tmp_path / "bad.parquet", "cannot read parquet"),
        (tmp_path / "bad.h5", "cannot read h5"),
        (tmp_path / "x.csv", "not a tile corpus"),
        (tgz, "compressed"),
        (str(tmp_path / "nothing-*.parquet"), "glob"),
    ]
    for spec, words in cases:
        with pytest.raises(InputError, match=words) as exc:
            open_corpus(spec)
        _one_line(exc, spec)
    with pytest.raises(InputError, match="column 'img'") as exc:
        open_corpus(corpora["parquet"], image_column="img")
    _one_line(exc, "train-0.parquet")
    with pytest.raises(InputError, match="cannot decode") as exc:
        open_corpus(broken.parent).read([0])
    _one_line(exc, broken)


def test_plism_corpus_warns_loudly(he_tiles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plismbench.data.sources import open_source

    source = open_source(tiles_dir=he_tiles)
    with pytest.warns(PlismCorpusWarning, match="benchmark's own evaluation tiles"):
        corpus = open_corpus(source)
    assert corpus.is_plism and corpus.kind == "plism" and len(corpus) == 32
    assert "WARNING" in capsys.readouterr().err
    slide = source.slide_ids()[1]
    first = next(iter(source.iter_batches(slide, 1, start=3))).tiles[0]
    assert np.array_equal(corpus.read([16 + 3])[0], first)
    with pytest.warns(PlismCorpusWarning):  # the PLISM layout given as a plain folder
        folder = open_corpus(he_tiles)
    assert folder.is_plism and folder.kind == "folder" and len(folder) == 32
    source.sequential = True  # type: ignore[attr-defined]  # what Hub streaming declares
    with pytest.raises(InputError, match="cannot be read at random"):
        open_corpus(source)


def test_plism_layouts_given_as_paths_warn(tmp_path: Path) -> None:
    from plismbench.data.catalogue import slide_id

    sid = slide_id("GIV", "AT2")
    tile = _tiles()[0][:16]
    pq.write_table(pa.table({"slide_id": [sid], "tile_id": ["tile_16_0_0"], "png": [_png(tile)]}),
                   tmp_path / "plism.parquet")  # fmt: skip
    with h5py.File(tmp_path / f"{sid}.h5", "w") as f:
        f.create_dataset("tile_16_0_0", data=tile)
    for spec in (tmp_path / "plism.parquet", tmp_path / f"{sid}.h5"):
        with pytest.warns(PlismCorpusWarning):
            corpus = open_corpus(spec)
        assert corpus.is_plism and np.array_equal(corpus.read([0])[0], tile)


def test_shards_are_opened_once_not_per_tile(
    corpora: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_fd, real_pf = tar_module._Fd, pq.ParquetFile

    def fd(path: Path) -> object:
        opened.append(str(path))
        return real_fd(path)

    def pf(path: object, *a: object, **kw: object) -> object:
        opened.append(str(path))
        return real_pf(path, *a, **kw)

    monkeypatch.setattr(tar_module, "_Fd", fd)
    monkeypatch.setattr("plismbench.distillation.corpus.h5._Fd", fd)
    monkeypatch.setattr(pq, "ParquetFile", pf)
    order = [int(i) for i in np.random.default_rng(1).permutation(N)] * 2
    for kind, files in (("tar", 2), ("h5-array", 1), ("parquet", 2)):
        corpus = open_corpus(corpora[kind])
        opened.clear()
        for i in order:
            corpus.read([i])
        assert len(opened) == files, kind  # one handle per shard, reused for every tile


def test_threads_read_the_same_corpus(corpora: dict[str, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = _tiles()
    for kind in ("tar", "parquet", "h5-encoded"):
        corpus = open_corpus(corpora[kind])
        jobs = [[int(i) for i in np.random.default_rng(s).permutation(N)] for s in range(8)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(corpus.read, jobs))
        for job, got in zip(jobs, results, strict=True):
            assert all(np.array_equal(t, expected[i]) for t, i in zip(got, job, strict=True))


def test_a_shard_index_being_built_elsewhere_is_waited_for(tmp_path: Path) -> None:
    import threading

    from plismbench.distillation.corpus import index_cache
    from plismbench.utils.io import save_npz
    from plismbench.utils.locks import claim, release

    shard = tmp_path / "s.bin"
    shard.write_bytes(b"x" * 1000)
    file = index_cache.cache_dir() / f"{index_cache.shard_key(shard, 'v')}.npz"
    lock = file.with_suffix(".lock")
    assert claim(lock)  # "another rank" (a live pid) is building it
    done = {"offsets": np.arange(3)}

    def finish() -> None:
        save_npz(file, **done)
        release(lock)

    def never() -> dict[str, np.ndarray]:
        raise AssertionError("built twice")

    timer = threading.Timer(0.3, finish)
    timer.start()
    try:
        got = index_cache.cached_index(shard, "v", never)
    finally:
        timer.join()
    assert np.array_equal(got["offsets"], done["offsets"]) and not lock.exists()


def test_any_corpus_converts_to_tar_shards(corpora: dict[str, str], tmp_path: Path) -> None:
    from plismbench.distillation.corpus import write_tar_shards

    expected = _tiles()
    for kind in ("folder", "parquet", "h5-array"):
        source = open_corpus(corpora[kind])
        want = source.read(range(N))
        out = tmp_path / kind
        shards = write_tar_shards(source, out, per_shard=5, batch=2)
        assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar",
                                            "shard-000002.tar"]  # fmt: skip
        converted = open_corpus(out)
        assert converted.kind == "tar" and len(converted) == N
        got = converted.read(range(N))
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
        if kind == "parquet":  # stored bytes copied, not re-encoded
            assert converted.read_encoded([3]) == source.read_encoded([3])
            assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    mtime = shards[0].stat().st_mtime_ns
    shards[2].unlink()  # an interrupted run: the finished shards are kept
    write_tar_shards(open_corpus(corpora["h5-array"]), tmp_path / "h5-array", per_shard=5)
    assert shards[0].stat().st_mtime_ns == mtime and shards[2].exists()
    with pytest.raises(InputError, match="another corpus"):  # never mixes two corpora
        write_tar_shards(open_corpus(corpora["folder"]), tmp_path / "h5-array", per_shard=5)
