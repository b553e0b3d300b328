"""benchmarks/bench_distill.py stays importable and runs (``--smoke``: depth-1 models)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench_distill.py"


def test_bench_distill_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_distill", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--smoke", "--device", "cpu"])
    out = capsys.readouterr().out
    assert result["img_per_s"] > 0 and "teacher backbone" in out and "MiB/image" in out
    # the memory report: recomputed targets hold far less than targets saved as inputs
    now = module.held_bytes(64, 512, d=16, chunk=16)
    before = module.held_bytes(64, 512, d=16, chunk=16, before=True)
    assert before >= 64 * 512 * 4 and now < before / 10
