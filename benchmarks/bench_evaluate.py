"""Evaluate-engine benchmark: every figure with its baseline, measured in the same run.

    uv run python benchmarks/bench_evaluate.py                 # N = 3000 and 8139, d = 768
    uv run python benchmarks/bench_evaluate.py --e2e-only      # the two end-to-end ratios
    uv run python benchmarks/bench_evaluate.py --memory-check  # 91 x 16,278 x 1,536 store
    uv run python benchmarks/bench_evaluate.py --device cuda --full  # 91 x 8,139 on a GPU

Baselines:
* ``matmul``: one N x N x d float32 GEMM (NumPy BLAS on CPU, torch on CUDA), best of 3;
* ``reference``: the reference algorithm done densely in float32: the 2N x 2N similarity
  matrix of both slides, then argpartition for the top-k of every row (it yields top-k
  only, no ranks).

The **end-to-end ratio** is the wall time of ``plismbench.evaluate(...)`` in-process
(imports done beforehand: plismbench's evaluate engine, hashing, scipy.special for the
intervals, torch; hashing, loading, all stages and every output included) divided by the
number of pairs and by the back-to-back ``matmul`` loop at the same N and d, run before
the first and after every evaluation (the same machine load); the median of
``--repeat`` runs is printed last. The
**kernel ratio** is the pair stage alone (GEMM + exact counts of both directions) plus
the intra stage amortised, divided by the same baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from plismbench.metrics.backend import Backend, get_backend
from plismbench.metrics.cosine import normalise
from plismbench.metrics.ranks import cross_counts, in_memory, intra_counts, ranks_from_counts

PLISM_SLIDES = 91
PLISM_PAIRS = PLISM_SLIDES * (PLISM_SLIDES - 1) // 2


def best_of(fn: Callable[[], object], repeat: int = 3, sync: bool = False) -> float:
    times = []
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def synthetic(n: int, d: int, n_slides: int, seed: int = 0) -> list[np.ndarray]:
    """Registered slides as hard as a real cross-staining pair: tiles share a 16-dim
    tissue signal, each slide adds its own noise (top-1 ~0.35, top-10 ~0.65, median rank
    ~4 at N = 3000, d = 768)."""
    rng = np.random.default_rng(seed)
    tissue = rng.standard_normal((n, 16), dtype=np.float32) @ rng.standard_normal(
        (16, d), dtype=np.float32
    )
    return [tissue + 8 * rng.standard_normal((n, d), dtype=np.float32) for _ in range(n_slides)]


def reference_dense_topk(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """The reference's algorithm in float32: 2N x 2N similarities + argpartition."""
    n = len(a)
    x = np.concatenate([a, b])
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)  # the query itself
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    hit_ab = (top[:n] == (np.arange(n) + n)[:, None]).any(axis=1)
    hit_ba = (top[n:] == np.arange(n)[:, None]).any(axis=1)
    return float((hit_ab.mean() + hit_ba.mean()) / 2)


def matmul_baseline(backend: Backend, a: object, b: object, sync: bool) -> float:
    """One N x N x d float32 GEMM, best of 3 (CPU: the faster of plain BLAS and ours)."""
    matmul = best_of(lambda: backend.gram(a, b), sync=sync)
    if backend.name == "cpu":
        an, bn = np.asarray(a), np.asarray(b)
        matmul = min(matmul, best_of(lambda: an @ bn.T))  # plain multithreaded BLAS
    return matmul


def bench_n(backend: Backend, n: int, d: int, sync: bool) -> None:
    raw = synthetic(n, d, 2)
    feats = [backend.put(normalise(x)) for x in raw]
    a, b = feats
    ra, rb = in_memory(raw[0]), in_memory(raw[1])
    matmul = matmul_baseline(backend, a, b, sync)
    c = cross_counts(backend, a, b, ra, rb)
    pair = best_of(lambda: cross_counts(backend, a, b, ra, rb), sync=sync)
    # thresholds like those of 90 partners: this pair's matches, jittered
    jitter = np.random.default_rng(1).normal(0, 0.005, size=(n, PLISM_SLIDES - 1))
    thr = c.match[:, None] + jitter
    intra = best_of(
        lambda: intra_counts(backend, a, thr, ra, [rb] * (PLISM_SLIDES - 1)), repeat=1, sync=sync
    )
    projected = pair + intra * PLISM_SLIDES / PLISM_PAIRS
    print(f"\n## N = {n}, d = {d}, device = {backend.name}")
    print(f"baseline matmul (one N x N x d float32 GEMM): {matmul:.3f} s")
    print(f"pair stage (GEMM + both directions' exact cross counts): {pair:.3f} s"
          f"  -> {pair / matmul:.2f}x matmul")  # fmt: skip
    amortised = intra * PLISM_SLIDES / PLISM_PAIRS
    print(f"intra stage, one slide against 90 partners: {intra:.3f} s"
          f"  -> {amortised:.4f} s per pair amortised over 4,095")  # fmt: skip
    print(f"kernel ratio per pair at 91 slides (projected): {projected:.3f} s"
          f"  -> {projected / matmul:.2f}x matmul")  # fmt: skip
    if backend.name == "cpu":
        an_np, bn_np = np.asarray(a), np.asarray(b)
        ref = best_of(lambda: reference_dense_topk(an_np, bn_np), repeat=1)
        print(f"baseline reference (dense 2N x 2N float32 + argpartition): {ref:.3f} s"
              f"  -> ours is {ref / projected:.1f}x faster")  # fmt: skip
    print(f"peak RSS so far: {peak_rss_gb():.2f} GB")


def bench_end_to_end(
    device: str, n: int, d: int, n_slides: int, full: bool, repeat: int = 2
) -> None:
    """``plismbench.evaluate`` in-process, imports excluded, ``repeat`` times (fresh
    folders), between back-to-back GEMM loops (the baseline under the same load)."""
    import importlib

    from featurestore import write

    import plismbench

    imports = ("plismbench.evaluation.engine", "plismbench.utils.hashing", "scipy.special", "torch")
    for module in imports:
        importlib.import_module(module)  # imports are not part of the figure

    backend = get_backend(device)
    sync = backend.name == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "f", "bench", synthetic(n, d, n_slides))
        a, b = (backend.put(normalise(x)) for x in synthetic(n, d, 2, seed=1))
        matmul = matmul_baseline(backend, a, b, sync)
        n_pairs = n_slides * (n_slides - 1) // 2

        def gemm_loop() -> float:
            """n_pairs GEMMs back to back: the baseline under the same machine load."""
            t = time.perf_counter()
            for _ in range(n_pairs):
                backend.gram(a, b) if backend.name != "cpu" else np.asarray(a) @ np.asarray(b).T
            if sync:
                torch.cuda.synchronize()
            return time.perf_counter() - t

        loops = [gemm_loop()]
        totals = []
        for attempt in range(repeat):
            t = time.perf_counter()
            plismbench.evaluate(
                "bench", Path(tmp) / "f", Path(tmp) / f"m{attempt}", device=device,
                n_tiles="all", progress=full, allow_missing=True,
            )  # fmt: skip
            totals.append(time.perf_counter() - t)
            loops.append(gemm_loop())
    loop = sum(loops) / len(loops) / n_pairs
    label = "full evaluation" if full else "end to end, in-process"
    print(f"\n## {label}: {n_slides} slides x {n} tiles, d = {d}, device = {device}")
    print(f"baseline matmul (one N x N x d float32 GEMM): best of 3 {matmul * 1e3:.1f} ms; "
          f"{n_pairs} back to back (before and after): {loop * 1e3:.1f} ms each")  # fmt: skip
    for total in totals:
        per = total / n_pairs
        print(f"total {total:.2f} s for {n_pairs} pairs = {per * 1e3:.1f} ms per pair"
              f"  -> end-to-end ratio {per / loop:.2f}x the back-to-back GEMM"
              f" ({per / matmul:.2f}x the best single one)")  # fmt: skip
    median = float(np.median(totals)) / n_pairs
    print(f"median of {len(totals)} runs: {median * 1e3:.2f} ms per pair -> end-to-end ratio "
          f"{median / loop:.2f}x the back-to-back GEMM")  # fmt: skip
    print(f"peak RSS so far: {peak_rss_gb():.2f} GB")


def bf16_drift(n: int, d: int) -> None:
    """How many ranks change if the GEMM ran in bf16 (why the engine stays in float32)."""
    raw = synthetic(n, d, 2)
    a, b = (normalise(x) for x in raw)
    ra, rb = in_memory(raw[0]), in_memory(raw[1])
    backend = get_backend("cpu")
    exact = ranks_from_counts(
        c := cross_counts(backend, a, b, ra, rb),
        intra_counts(backend, a, c.match[:, None], ra, [rb])[:, 0],
        intra_counts(backend, b, c.match[:, None], rb, [ra])[:, 0],
    )[0]
    ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
    sims = (ta @ tb.T).float()
    intra = (ta @ ta.T).float()
    intra.fill_diagonal_(-torch.inf)
    match = sims.diagonal()
    approx = (1 + (sims >= match[:, None]).sum(1) - 1 + (intra >= match[:, None]).sum(1)).numpy()
    changed = float(np.mean(approx != exact))
    top10 = abs(float(np.mean(approx <= 10) - np.mean(exact <= 10)))
    print(f"\n## bf16 GEMM instead of float32 (N = {n}, d = {d})")
    print(f"ranks changed: {100 * changed:.1f}% of queries; top-10 accuracy moved by {top10:.4f}")


def memory_check(n_slides: int = PLISM_SLIDES, n_total: int = 16_278, d: int = 1536) -> None:
    """Peak RSS of the default evaluation's largest working set: 91 x 8,139 x 1,536."""
    from plismbench.evaluation.subset import resolve
    from plismbench.store.features import FeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        from featurestore import write

        rng = np.random.default_rng(0)
        base = rng.standard_normal((n_total, d), dtype=np.float32)
        t = time.perf_counter()
        write(Path(tmp) / "f", "big", (base + rng.standard_normal((n_total, d), dtype=np.float32)
                                       for _ in range(n_slides)))  # fmt: skip
        print(f"\n## memory check: wrote {n_slides} x {n_total} x {d} in "
              f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        rss_before = peak_rss_gb()
        store = FeatureStore.open(Path(tmp) / "f", "big", allow_missing=True)
        rows, _ = resolve(store.n_tiles)
        backend = get_backend("cpu")
        t = time.perf_counter()
        feats = [backend.put(x) for x in store.iter_normalised(rows)]
        load = time.perf_counter() - t
        raw = [store.raw_rows(i, rows) for i in range(4)]
        c = cross_counts(backend, feats[0], feats[1], raw[0], raw[1])
        for j in range(2, 4):
            cross_counts(backend, feats[0], feats[j], raw[0], raw[j])
        thr = np.repeat(c.match[:, None], n_slides - 1, axis=1)
        intra_counts(backend, feats[0], thr, raw[0], [raw[1]] * (n_slides - 1))
        print(f"loaded and normalised {len(feats)} x {len(rows)} x {d} in {load:.0f} s; "
              f"ran 3 pairs and 1 intra slide")  # fmt: skip
        print(f"peak RSS: {peak_rss_gb():.2f} GB (before loading {rss_before:.2f} GB); budget 8 GB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[3000, 8139])
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--device", default="auto")
    p.add_argument("--full", action="store_true", help="the full 91 x 8,139 evaluation")
    p.add_argument("--memory-check", action="store_true")
    p.add_argument("--e2e-only", action="store_true", help="only the two end-to-end ratios")
    p.add_argument("--kernel-only", action="store_true", help="no end-to-end runs")
    p.add_argument("--repeat", type=int, default=3, help="end-to-end runs per configuration")
    args = p.parse_args()
    backend = get_backend(args.device)
    sync = backend.name == "cuda"
    gpu = torch.cuda.get_device_name() if sync else "none"
    print(f"# bench_evaluate on {platform.node()}: {os.cpu_count()} CPU cores, GPU: {gpu}, "
          f"torch {torch.__version__}, numpy {np.__version__}")  # fmt: skip
    if args.memory_check:
        memory_check()
        return
    if not args.e2e_only:
        for n in args.n:
            bench_n(backend, n, args.d, sync)
        bf16_drift(min(args.n), args.d)
    if not args.kernel_only:  # the two end-to-end configurations
        bench_end_to_end(backend.name, 3000, args.d, 14, full=False, repeat=args.repeat)
        bench_end_to_end(backend.name, 460, args.d, PLISM_SLIDES, full=False, repeat=args.repeat)
    if args.full:
        bench_end_to_end(backend.name, 8139, args.d, PLISM_SLIDES, full=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
