"""analyze benchmark: each stage against its baseline, measured in the same run.

    uv run python benchmarks/bench_analyze.py                        # 91 x 2,000 x 768
    uv run python benchmarks/bench_analyze.py --tiles 8139 --dim 1536 --sample 460  # full

Baselines:
* ``read``: one pass of ``FeatureStore.iter_normalised`` over every slide (load, check,
  select rows, normalise): what any analysis must pay;
* ``gemm``: one N x N x d float32 GEMM of the sampled tiles (N = 91 x sample), in row
  blocks of 4,096 so the N x N result never sits in memory (the same flops).

``--end-to-end`` instead runs ``plismbench.analyze`` itself on the store, in a child
process, and reports its wall time and peak RSS (``getrusage(RUSAGE_CHILDREN)``) beside
the memory model of docs/benchmarks.md.

Reported: the streamed decomposition (read included) over ``read``; the finish (closed
forms and the sample's spectrum); the probes; FAISS exact kNN over ``gemm``; croma's RI;
peak RSS.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from featurestore import write

from plismbench.analysis import geometry, neighbours, pathorob, probes, variance
from plismbench.analysis.compute import RI_MAX_LOCATIONS, sample_positions
from plismbench.store.design import crossed_design
from plismbench.store.features import FeatureStore


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def make_store(root: Path, tiles: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((tiles, dim), dtype=np.float32)
    st = rng.standard_normal((13, dim), dtype=np.float32) * 0.5
    sc = rng.standard_normal((7, dim), dtype=np.float32) * 0.3
    slides = (
        base + st[i] + sc[j] + 0.5 * rng.standard_normal((tiles, dim), dtype=np.float32)
        for i in range(13)
        for j in range(7)
    )
    write(root, "bench", slides)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--end-to-end", action="store_true", help="run plismbench.analyze")
    args = ap.parse_args()
    if args.end_to_end:
        end_to_end(args.tiles, args.dim, args.sample)
        return
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"91 slides x {args.tiles} tiles x d={args.dim}, sample {args.sample}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        make_store(root, args.tiles, args.dim)
        print(f"write store: {time.perf_counter() - t:.1f} s")
        store = FeatureStore.open(root, "bench")
        design = crossed_design([s.name for s in store.slides])
        rows = np.arange(store.n_tiles)
        pos = sample_positions(rows.size, args.sample)

        t = time.perf_counter()
        for _ in store.iter_normalised(rows, threads=args.threads):
            pass
        read = time.perf_counter() - t

        t = time.perf_counter()
        m = variance.Moments(design, rows.size, store.dim)
        sample = np.empty((design.n_slides, pos.size, store.dim), np.float32)
        for i, x in enumerate(store.iter_normalised(rows, threads=args.threads)):
            m.add(i, x)
            sample[i] = x[pos]
        stream = time.perf_counter() - t
        t = time.perf_counter()
        spec = geometry.Spectrum(store.dim)
        spec.add(sample.reshape(-1, store.dim))
        variance.decompose(m), variance.decompose_subsets(m), geometry.geometry(m, spec)
        finish = time.perf_counter() - t
        print(f"read (baseline): {read:.2f} s")
        print(f"stream decomposition (read included): {stream:.2f} s "
              f"= {stream / read:.2f} x read; finish (closed forms, sample spectrum) "
              f"{finish:.2f} s")  # fmt: skip

        n_loc = pos.size
        x = sample.reshape(-1, store.dim)
        slide = np.repeat(np.arange(design.n_slides), n_loc)
        loc = np.tile(np.arange(n_loc), design.n_slides)
        t = time.perf_counter()
        probes.probes(x, design.staining_of[slide], design.scanner_of[slide], loc)
        print(f"probes (2 targets x 5 folds, {x.shape[0]} rows): {time.perf_counter() - t:.2f} s"
              f" = {(time.perf_counter() - t) / read:.2f} x read")  # fmt: skip

        t = time.perf_counter()
        for start in range(0, x.shape[0], 4096):
            _ = x[start : start + 4096] @ x.T
        gemm = time.perf_counter() - t
        t = time.perf_counter()
        neighbours.knn(x, args.k, use_gpu=False)
        knn = time.perf_counter() - t
        print(f"gemm N={x.shape[0]} (baseline): {gemm:.2f} s; FAISS kNN k={args.k}: {knn:.2f} s "
              f"= {knn / gemm:.2f} x gemm")  # fmt: skip

        sub = sample_positions(n_loc, RI_MAX_LOCATIONS)  # what analyze runs croma on
        ri_slide = np.repeat(np.arange(design.n_slides), sub.size)
        t = time.perf_counter()
        pathorob.robustness_index(
            sample[:, sub].reshape(-1, store.dim), np.tile(sub, design.n_slides),
            [design.slide_ids[i] for i in ri_slide],
            [design.stainings[i] for i in design.staining_of[ri_slide]],
            [design.scanners[i] for i in design.scanner_of[ri_slide]], args.k,
        )  # fmt: skip
        print(f"croma RI (staining + scanner, {ri_slide.size} tiles): "
              f"{time.perf_counter() - t:.2f} s")  # fmt: skip
        print(f"peak RSS: {peak_rss_gb():.2f} GB")


def model_gb(tiles: int, dim: int, sample: int, slides: int = 91, threads: int = 4) -> float:
    """The memory model of docs/benchmarks.md (GB, 1e9 bytes), imports excluded.

    The stages run one after the other, so the peak is the sample plus the largest stage.
    """
    n = slides * sample
    ri_rows = slides * min(sample, RI_MAX_LOCATIONS)
    kept = n * dim * 4  # the (slides, sample, d) float32 sample, held to the end
    stream = 21 * tiles * dim * 8 + threads * tiles * dim * 4  # the sums, files in flight
    probe = n * dim * 8 * 2  # StandardScaler's float64 copy and its transform
    knn = 2 * n * dim * 4  # the offset-corrected copy and FAISS's copy
    # croma's RI: scikit-learn's chunked pairwise distances (1 GiB working memory) and
    # their sort; 1.8 x the pair matrix, measured at 9,100 rows (1.2 GB).
    croma = 1.8 * min(ri_rows**2 * 8, 1024**3)
    return (kept + max(stream, probe, knn, croma)) / 1e9


def end_to_end(tiles: int, dim: int, sample: int) -> None:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_store(root, tiles, dim)
        code = (
            "import plismbench.analysis as a; "
            f"a.analyze(['bench'], {str(root)!r}, {str(root / 'out')!r}, sample_tiles={sample}, "
            "device='cpu')"
        )
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
        print(f"analyze 91 x {tiles} x {dim}, sample {sample}: {wall:.0f} s wall, "
              f"peak RSS {peak:.2f} GB; model {model_gb(tiles, dim, sample):.2f} GB "
              "+ imports (0.28 GB)")  # fmt: skip


if __name__ == "__main__":
    main()
