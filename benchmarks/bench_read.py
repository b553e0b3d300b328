"""Tiles/s of each reader against the raw library doing the same read in a plain loop.

Run: ``uv run python benchmarks/bench_read.py [--tiles 256] [--slides 2] [--batch 64]``.
It writes a small synthetic PLISM (h5, parquet, folder) to a temporary folder, then times, on
the same tiles: h5py reading every dataset vs :class:`H5Source`; PIL decoding every PNG file vs
:class:`FolderSource`; pyarrow + PIL decoding the png column vs :class:`ParquetSource`. A reader
should stay within 1.2x of its raw loop so that it is never the bottleneck of extraction.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from plismbench.data.sources import open_source
from plismbench.data.synth import synth


def _best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time over ``repeat`` runs, and the tile count."""
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return min(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=256, help="tiles per slide")
    parser.add_argument("--slides", type=int, default=2, help="slides (scanners of GIV)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scanners = ["AT2", "GT450", "P", "S210", "S360", "S60", "SQ"][: args.slides]

    with tempfile.TemporaryDirectory() as tmp:
        d = synth(
            Path(tmp), n_tiles=args.tiles, stainings=["GIV"], scanners=scanners,
            formats=("h5", "parquet", "folder"),
        )  # fmt: skip
        slides = open_source(download_dir=d).slide_ids()

        def raw_h5() -> int:
            n = 0
            for sid in slides:
                with h5py.File(d / f"{sid}.h5", "r") as f:
                    keys = sorted(f.keys(), key=lambda k: tuple(int(v) for v in k.split("_")[2:]))
                    for i in range(0, len(keys), args.batch):
                        batch = np.stack([f[k][()] for k in keys[i : i + args.batch]])
                        n += len(batch)
            return n

        def raw_folder() -> int:
            n = 0
            for sid in slides:
                for path in sorted((d / "tiles" / sid).glob("*.png")):
                    with Image.open(path) as im:
                        np.asarray(im)
                    n += 1
            return n

        def raw_parquet() -> int:
            n = 0
            for path in sorted((d / "parquet").rglob("*.parquet")):
                for b in pq.read_table(path, columns=["png"]).column("png").to_pylist():
                    with Image.open(io.BytesIO(b["bytes"])) as im:
                        np.asarray(im)
                    n += 1
            return n

        def reader(**kw: object) -> Callable[[], int]:
            def run() -> int:
                src = open_source(**kw)  # type: ignore[arg-type]
                return sum(
                    len(b.tiles)
                    for sid in src.slide_ids()
                    for b in src.iter_batches(sid, args.batch)
                )

            return run

        pairs = [
            ("h5", raw_h5, reader(download_dir=d), "h5py loop"),
            ("folder", raw_folder, reader(tiles_dir=d / "tiles"), "PIL decode loop"),
            ("parquet", raw_parquet, reader(parquet=d / "parquet"), "pyarrow + PIL loop"),
        ]
        print(f"{len(slides)} slides x {args.tiles} tiles of 224 px, batch {args.batch}", end="")
        print(f", best of {args.repeat}")
        print(f"{'reader':<8} {'tiles/s':>9} {'raw tiles/s':>12} {'raw loop':<20} {'ratio':>6}")
        for name, raw, ours, what in pairs:
            t_raw, n_raw = _best(raw, args.repeat)
            t_ours, n_ours = _best(ours, args.repeat)
            assert n_raw == n_ours == len(slides) * args.tiles
            print(
                f"{name:<8} {n_ours / t_ours:>9.0f} {n_raw / t_raw:>12.0f} {what:<20} "
                f"{t_ours / t_raw:>5.2f}x"
            )


if __name__ == "__main__":
    main()
