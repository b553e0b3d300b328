"""Tiles/s of the distillation corpus loader against a raw decode loop, per format.

Run: ``uv run python benchmarks/bench_corpus.py [--tiles 2048] [--codec jpeg] [--workers 2]``.
It writes the same tiles (crops of the bundled CC0 H&E region, 224 px) as a folder of
images, parquet shards (HF-style 100-row row groups), webdataset tar shards and an h5 file
(a uint8 array, and encoded bytes), then times, per format:

* ``raw``: the same files read **in storage order** in a plain loop (PIL decode of each
  file / parquet value / tar member; h5py row reads), the named baseline;
* ``loader``: :class:`CorpusLoader` streaming every tile in its **random** per-epoch order
  with ``--workers`` processes (steady state: timed from the first batch on), and with 0
  workers (random reads in the calling process).

The three are interleaved ``--repeat`` times and the best of each is kept. The printed ratio
is loader (``--workers``) / raw tiles/s. CPU milliseconds per tile (the workers' included)
are also printed: unlike tiles/s they hardly move when other jobs share the machine, and
with idle cores ``W`` workers deliver about ``W / CPU per tile``. ``--index N`` also times
opening (indexing) a tar shard and a folder of N tiny images, the cost that grows with the
corpus.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from plismbench.distillation.corpus import CorpusLoader, open_corpus


def _tiles(n: int, size: int) -> list[np.ndarray]:
    from plismbench.assets import __file__ as assets

    region = np.asarray(Image.open(Path(assets).parent / "cmu1_he_region.jpg").convert("RGB"))
    rng = np.random.default_rng(0)
    h, w = region.shape[:2]
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
        tile = region[y : y + size, x : x + size]
        out.append(np.ascontiguousarray(np.rot90(tile, int(rng.integers(0, 4)))))
    return out


def _encode(tile: np.ndarray, codec: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="JPEG" if codec == "jpeg" else "PNG", quality=90)
    return buf.getvalue()


def _decode(data: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        return np.asarray(im.convert("RGB"))


def _write(root: Path, tiles: list[np.ndarray], codec: str, shard: int) -> dict[str, Path]:
    ext = "jpg" if codec == "jpeg" else "png"
    blobs = [_encode(t, codec) for t in tiles]
    for i, data in enumerate(blobs):
        sub = root / "folder" / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"patch_{i}.{ext}").write_bytes(data)
    (root / "pq").mkdir()
    (root / "wds").mkdir()
    for s in range(0, len(blobs), shard):
        part = blobs[s : s + shard]
        table = pa.table({"image": [{"bytes": b, "path": None} for b in part]})
        pq.write_table(table, root / "pq" / f"train-{s // shard:05d}.parquet", row_group_size=100)
        with tarfile.open(root / "wds" / f"shard-{s // shard:05d}.tar", "w") as tar:
            for k, data in enumerate(part):
                info = tarfile.TarInfo(f"{s + k:08d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with h5py.File(root / "tiles.h5", "w") as f:
        f.create_dataset("image", data=np.stack(tiles))
    with h5py.File(root / "encoded.h5", "w") as f:
        ds = f.create_dataset("image", (len(blobs),), dtype=h5py.vlen_dtype(np.uint8))
        for i, data in enumerate(blobs):
            ds[i] = np.frombuffer(data, np.uint8)
    return {"folder": root / "folder", "parquet": root / "pq", "tar": root / "wds",
            "h5-array": root / "tiles.h5", "h5-encoded": root / "encoded.h5"}  # fmt: skip


def _raw(kind: str, path: Path) -> Callable[[], int]:
    """The plain loop over the same files, in storage order."""

    def run() -> int:
        n = 0
        if kind == "folder":
            for f in sorted(path.rglob("*.*")):
                n += _decode(f).shape[0] > 0
        elif kind == "parquet":
            for f in sorted(path.glob("*.parquet")):
                for v in pq.read_table(f).column("image").combine_chunks().field("bytes"):
                    n += _decode(v.as_py()).shape[0] > 0
        elif kind == "tar":
            for f in sorted(path.glob("*.tar")):
                with tarfile.open(f) as tar:
                    for m in tar:
                        n += _decode(tar.extractfile(m).read()).shape[0] > 0  # type: ignore[union-attr]
        else:
            with h5py.File(path) as h:
                ds = h["image"]
                for i in range(len(ds)):
                    v = ds[i]
                    n += (_decode(v.tobytes()) if kind == "h5-encoded" else v).shape[0] > 0
        return n

    return run


def _cpu() -> float:
    """CPU seconds of this process and of its finished (joined) children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _loader(path: Path, batch: int, workers: int) -> Callable[[], tuple[int, float, float]]:
    """(tiles, steady-state seconds, CPU seconds per tile including the workers')."""

    def run() -> tuple[int, float, float]:
        corpus = open_corpus(path)
        steps = len(corpus) // batch
        cpu0 = _cpu()
        with CorpusLoader(corpus, global_batch=batch, seed=0, workers=workers, steps=steps) as ld:
            it = iter(ld)
            first = len(next(it))  # workers started, first batch in: steady state from here
            t0 = time.perf_counter()
            n = sum(len(b) for b in it)
            dt = time.perf_counter() - t0
        return n, dt, (_cpu() - cpu0) / (n + first)  # workers joined by the close

    return run


def _index(root: Path, n: int) -> None:
    """Seconds to index n tiles as one tar shard (first open, then cached) and as a folder."""
    tiny = _encode(np.zeros((4, 4, 3), np.uint8), "png")
    with tarfile.open(root / "big.tar", "w") as tar:
        for i in range(n):
            info = tarfile.TarInfo(f"{i:09d}.png")
            info.size = len(tiny)
            tar.addfile(info, io.BytesIO(tiny))
    for i in range(n):
        sub = root / "many" / f"{i // 1000:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.png").write_bytes(tiny)
    for label, path in (("tar, first open", root / "big.tar"), ("tar, cached", root / "big.tar"),
                        ("folder walk", root / "many")):  # fmt: skip
        t0 = time.perf_counter()
        corpus = open_corpus(path)
        dt = time.perf_counter() - t0
        rate = n / dt / 1e3
        held = sum(v.nbytes for v in vars(corpus).values() if isinstance(v, np.ndarray))
        print(f"index {label:<16} {len(corpus)} tiles in {dt:6.2f} s = {rate:8.1f} k tiles/s, "
              f"{held / len(corpus):.1f} bytes/tile held")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--codec", choices=["jpeg", "png"], default="jpeg")
    parser.add_argument("--shard", type=int, default=512, help="tiles per parquet/tar shard")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--index", type=int, default=0, help="also time indexing N tiles")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PLISMBENCH_CORPUS_CACHE"] = str(Path(tmp) / "index-cache")
        specs = _write(Path(tmp), _tiles(args.tiles, args.size), args.codec, args.shard)
        print(f"{args.tiles} tiles of {args.size} px ({args.codec}), batch {args.batch}, "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'':<11} {'tiles/s':^38} | {'CPU ms per tile':^28}")
        print(f"{'format':<11} {'raw':>8} {'loader0':>8} {'loaderW':>8} {'W/raw':>8} |"
              f" {'raw':>8} {'loader0':>8} {'loaderW':>8}")  # fmt: skip
        for kind, path in specs.items():
            raw_fn = _raw(kind, path)
            fns = [_loader(path, args.batch, w) for w in (0, args.workers)]
            raw, rates = 0.0, [0.0, 0.0]
            raw_cpu, cpus = float("inf"), [float("inf")] * 2
            for _ in range(args.repeat):  # interleaved, so that a busy spell hits all three
                cpu0 = _cpu()
                raw = max(raw, args.tiles / _timed(raw_fn))
                raw_cpu = min(raw_cpu, (_cpu() - cpu0) / args.tiles)
                for k, fn in enumerate(fns):
                    n, dt, cpu = fn()
                    rates[k], cpus[k] = max(rates[k], n / dt), min(cpus[k], cpu)
            print(f"{kind:<11} {raw:8.0f} {rates[0]:8.0f} {rates[1]:8.0f} {rates[1] / raw:8.2f} |"
                  f" {raw_cpu * 1e3:8.3f} {cpus[0] * 1e3:8.3f} {cpus[1] * 1e3:8.3f}")  # fmt: skip
        if args.index:
            _index(Path(tmp), args.index)


def _timed(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
