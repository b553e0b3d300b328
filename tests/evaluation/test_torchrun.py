"""``torchrun -m plismbench evaluate``: 2 gloo ranks on CPU, byte-identical outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from featurestore import plism_like, write_store

import plismbench


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_ranks_give_the_single_process_bytes(tmp_path: Path) -> None:
    slides = plism_like(np.random.default_rng(0), stainings=("GIV", "GM", "HR"), n=40, signs=True)
    write_store(tmp_path / "f", "m", slides)  # 6 slides, 15 pairs, many exact ties
    args = ["evaluate", "-m", "m", "--features-dir", str(tmp_path / "f"), "--metrics-dir",
            str(tmp_path / "dist"), "--allow-missing", "-q", "--device", "cpu"]  # fmt: skip
    out = subprocess.run(
        ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "plismbench", *args],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("Results in") == 1  # rank 0 alone prints
    single = plismbench.evaluate(
        "m", tmp_path / "f", tmp_path / "single", device="cpu", allow_missing=True,
        progress=False,
    )  # fmt: skip
    dist = tmp_path / "dist" / "40_tiles" / "m"
    for name in ("metrics.csv", "results.csv", "results.md"):
        assert (dist / name).read_bytes() == (single.output_dir / name).read_bytes(), name
    run = json.loads((dist / "run.json").read_text())
    assert run["world_size"] == 2 and run["pairs_computed"] == 15
    assert len(list((dist / ".cache" / "intra").glob("*.npy"))) == 6


def test_not_under_torchrun_no_process_group(tmp_path: Path) -> None:
    write_store(tmp_path / "f", "m", plism_like(np.random.default_rng(1), n=10))
    res = plismbench.evaluate("m", tmp_path / "f", tmp_path / "o", allow_missing=True,
                              progress=False)  # fmt: skip
    assert json.loads((res.output_dir / "run.json").read_text())["world_size"] == 1
    assert "torch.distributed" not in sys.modules or not _initialised()


def _initialised() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()
