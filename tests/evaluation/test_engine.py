"""The evaluate engine end to end against brute force, and its resumability."""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from featurestore import plism_like, write_store
from reference import brute_ranks, unit

import plismbench
from plismbench.data.catalogue import parse_slide_id
from plismbench.evaluation import stages as engine
from plismbench.evaluation.subset import select_tiles

K = (1, 3, 5, 10)
#: These stores hold a few PLISM slides, not all 91.
evaluate = functools.partial(plismbench.evaluate, allow_missing=True)


def _expected(slides: dict[str, np.ndarray], ks=K) -> pl.DataFrame:
    rows = []
    for a, b in itertools.combinations(sorted(slides), 2):
        ab, ba = brute_ranks(slides[a], slides[b])
        cos = float(np.mean(np.sum(unit(slides[a]) * unit(slides[b]), axis=1)))
        rec = {"slide_a": a, "slide_b": b, "cosine_similarity": cos}
        for k in ks:
            rec[f"top_{k}_accuracy"] = (np.mean(ab <= k) + np.mean(ba <= k)) / 2
            rec[f"top_{k}_accuracy_a_to_b"] = np.mean(ab <= k)
            rec[f"top_{k}_accuracy_b_to_a"] = np.mean(ba <= k)
        rec["mrr"] = (np.mean(1 / ab) + np.mean(1 / ba)) / 2
        rec["median_rank"] = float(np.median(np.concatenate([ab, ba])))
        rows.append(rec)
    return pl.DataFrame(rows)


@pytest.mark.parametrize("signs", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_every_pair_matches_brute_force(tmp_path: Path, signs: bool, device: str) -> None:
    slides = plism_like(np.random.default_rng(0), n=60, signs=signs)
    write_store(tmp_path / "f", "m", slides)
    res = evaluate("m", tmp_path / "f", tmp_path / "out", device=device, progress=False)
    want = _expected(slides)
    got = res.metrics.sort("slide_a", "slide_b")
    assert got.height == 6
    for col in want.columns:
        if col.startswith("slide"):
            assert got[col].to_list() == want[col].to_list()
        elif col == "cosine_similarity":
            np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    assert got["top_1_accuracy"].min() < 1  # a non-trivial case
    types = dict(zip(got["slide_a", "slide_b"].rows(), got["pair_type"], strict=True))
    for (a, b), t in types.items():
        sa, sb = parse_slide_id(a), parse_slide_id(b)
        assert (t == "cross-scanner") == (sa.staining == sb.staining and sa.scanner != sb.scanner)


def test_identical_slides_score_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 32)) * 500  # norms far above float16's ~256 limit
    write_store(tmp_path / "f", "m", {"GIV_AT2_x": x, "GIV_P_x": x.copy(), "GM_AT2_x": x.copy()})
    res = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    for k in K:
        assert res.metrics[f"top_{k}_accuracy"].to_list() == [1.0, 1.0, 1.0]
    assert res.metrics["mrr"].to_list() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(res.metrics["cosine_similarity"], 1.0, atol=1e-6)


def test_outputs_and_their_columns(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(2), n=30)
    write_store(tmp_path / "f", "m", slides)
    meta = {"model": "m", "precision": "fp32", "hub_revision": "a" * 40,
            "source": {"type": "h5", "revision": "b" * 40}}  # fmt: skip
    for name in slides:
        (tmp_path / "f" / "m" / name / "meta.json").write_text(json.dumps(meta))
    res = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    out = tmp_path / "out" / "30_tiles" / "m"
    assert res.output_dir == out
    for f in ["metrics.csv", "metrics.parquet", "results.csv", "results.md", "run.json"]:
        assert (out / f).is_file(), f
    csv = pl.read_csv(out / "metrics.csv")
    required = [
        "slide_a",
        "slide_b",
        "staining_a",
        "scanner_a",
        "staining_b",
        "scanner_b",
        "pair_type",
        "cosine_similarity",
        "top_1_accuracy",
        "top_3_accuracy",
        "top_5_accuracy",
        "top_10_accuracy",
        "mrr",
        "median_rank",
    ]
    assert set(required) <= set(csv.columns)
    # CSV keeps full precision
    np.testing.assert_array_equal(csv["cosine_similarity"], res.metrics["cosine_similarity"])
    results = pl.read_csv(out / "results.csv")
    assert results.columns[:2] == ["pair_type", "metric"]
    assert {"n_pairs", "mean", "std", "median", "q1", "q3", "iqr"} <= set(results.columns)
    assert results["pair_type"].unique(maintain_order=True).to_list() == [
        "cross-scanner", "cross-staining", "cross-scanner-cross-staining", "all",
    ]  # fmt: skip
    assert json.loads((out / "provenance.json").read_text()) == {s: meta for s in slides}
    run = json.loads((out / "run.json").read_text())  # the weights' and the tiles' commits
    assert (run["model_hub_revision"], run["dataset_revision"]) == ("a" * 40, "b" * 40)
    assert "Median [95% CI] (IQR)" in (out / "results.md").read_text()
    # every aggregate has its interval (bootstrap over stainings and scanners), around it
    ci = ["median_ci_low", "median_ci_high"]  # IQRs have none (docs/statistics.md)
    assert set(ci) <= set(results.columns)
    assert set(ci) <= set(res.results.columns)  # the API's table too, not only the file
    ok = results.drop_nulls(ci)
    assert ok.height > 0
    assert (ok["median_ci_low"] <= ok["median"] + 1e-12).all()
    assert (ok["median"] <= ok["median_ci_high"] + 1e-12).all()
    assert not any(c.startswith("iqr_ci") for c in results.columns)


def test_crash_then_resume_recomputes_only_unfinished(tmp_path: Path, monkeypatch) -> None:
    slides = plism_like(np.random.default_rng(3), stainings=("GIV", "GM", "HR"), n=40)
    write_store(tmp_path / "f", "m", slides)  # 6 slides, 15 pairs
    clean = evaluate("m", tmp_path / "f", tmp_path / "clean", progress=False)

    real = engine.cross_counts_many
    calls = {"pairs": 0}

    def crash_after_four(backend, xa, xbs, raw_a, raw_bs, match=None):
        calls["pairs"] += len(raw_bs)
        if calls["pairs"] > 4:
            raise KeyboardInterrupt("simulated kill")
        return real(backend, xa, xbs, raw_a, raw_bs, match)

    monkeypatch.setattr(engine, "cross_counts_many", crash_after_four)
    # two pairs per cache file: pairs 1-2 and 3-4 are on disk, the batch of 5-6 is lost
    monkeypatch.setattr(plismbench.evaluation.engine, "pairs_per_file", lambda n, d: 2)
    with pytest.raises(KeyboardInterrupt):
        evaluate("m", tmp_path / "f", tmp_path / "out", progress=False, workers=1)
    out = tmp_path / "out" / "40_tiles" / "m"
    assert not (out / "run.json").exists() and not (out / "metrics.csv").exists()
    monkeypatch.setattr(engine, "cross_counts_many", real)

    resumed = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    assert resumed.pairs_computed == 15 - 4
    assert resumed.metrics.equals(clean.metrics)
    again = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    assert again.reused and again.pairs_computed == 0


def test_sigkill_then_resume_gives_identical_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    slides = plism_like(rng, stainings=("GIV", "GM", "HR", "KR"), scanners=("AT2", "P", "SQ"),
                        n=1500, d=128)  # fmt: skip
    write_store(tmp_path / "f", "m", slides)  # 12 slides, 66 pairs
    n_pairs = 66
    code = (
        "import sys, plismbench; plismbench.evaluate('m', sys.argv[1], sys.argv[2], "
        "progress=False, workers=1, allow_missing=True)"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "f"), str(tmp_path / "out")]
    proc = subprocess.Popen(args)
    pairs_dir = tmp_path / "out" / "1500_tiles" / "m" / ".cache" / "pairs"
    per_file = plismbench.evaluation.engine.pairs_per_file(1500, 128)
    assert 1 < per_file < n_pairs // 2  # several batches of several pairs
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if pairs_dir.is_dir() and len(list(pairs_dir.glob("*.npy"))) >= 1:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sum(len(np.load(f)) for f in pairs_dir.glob("*.npy"))  # whole batches only
    assert per_file <= done < n_pairs, "the kill must land mid-run"
    out = tmp_path / "out" / "1500_tiles" / "m"
    assert not (out / "run.json").exists()
    resumed = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    assert resumed.pairs_computed == n_pairs - done
    clean = evaluate("m", tmp_path / "f", tmp_path / "clean", progress=False)
    assert (out / "metrics.csv").read_bytes() == (clean.output_dir / "metrics.csv").read_bytes()


def test_changed_input_is_never_stale(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    slides = plism_like(rng, n=40)
    write_store(tmp_path / "f", "m", slides)
    first = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    name = sorted(slides)[0]
    slides[name] = rng.standard_normal(slides[name].shape)  # re-extracted: different features
    time.sleep(0.01)
    write_store(tmp_path / "f", "m", {name: slides[name]})
    second = evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    assert not second.reused and second.pairs_computed == 6
    want = _expected(slides)
    np.testing.assert_array_equal(
        second.metrics.sort("slide_a", "slide_b")["top_1_accuracy"], want["top_1_accuracy"]
    )
    assert not second.metrics.equals(first.metrics)


def test_new_top_k_reuses_ranks(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(6), n=40)
    write_store(tmp_path / "f", "m", slides)
    evaluate("m", tmp_path / "f", tmp_path / "out", progress=False)
    res = evaluate("m", tmp_path / "f", tmp_path / "out", top_k=[2, 7], progress=False)
    assert res.pairs_computed == 0 and not res.reused
    want = _expected(slides, ks=(2, 7))
    np.testing.assert_array_equal(res.metrics["top_7_accuracy"], want["top_7_accuracy"])
    res = evaluate(
        "m", tmp_path / "f", tmp_path / "out", top_k=[2, 7], overwrite=True, progress=False
    )
    assert res.pairs_computed == 6


def test_tile_subsets(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(7), n=64)
    write_store(tmp_path / "f", "m", slides)
    res = evaluate("m", tmp_path / "f", tmp_path / "out", n_tiles=20, progress=False)
    rows = select_tiles(64, 20)
    assert res.output_dir.name == "m" and res.output_dir.parent.name == "20_tiles"
    want = _expected({k: v[rows] for k, v in slides.items()})
    np.testing.assert_array_equal(res.metrics["top_1_accuracy"], want["top_1_accuracy"])
    # the same rows from a file (any order) give the same numbers
    np.save(tmp_path / "subset.npy", rows[::-1].copy())
    res2 = evaluate(
        "m", tmp_path / "f", tmp_path / "out2", tile_subset=tmp_path / "subset.npy", progress=False
    )
    assert res2.metrics.equals(res.metrics)
    # "all" and the default (not a full PLISM slide) use every tile
    res3 = evaluate("m", tmp_path / "f", tmp_path / "out", n_tiles="all", progress=False)
    assert res3.n_tiles == 64


def test_save_ranks(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(8), n=25, signs=True)
    write_store(tmp_path / "f", "m", slides)
    res = evaluate(
        "m", tmp_path / "f", tmp_path / "out", save_ranks=True, progress=False
    )
    a, b = sorted(slides)[:2]
    ranks = np.load(res.output_dir / "ranks" / f"{a}---{b}.npy")
    ab, ba = brute_ranks(slides[a], slides[b])
    np.testing.assert_array_equal(ranks, np.stack([ab, ba]))
    tiles = np.load(res.output_dir / "ranks" / "tiles.npy")
    assert tiles.shape == (25, 4)
