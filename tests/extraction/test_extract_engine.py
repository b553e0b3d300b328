"""Extract engine: layout, meta.json, resume after a kill, overwrite, precision check, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from extract_memsource import CrashingSource, MemorySource

from plismbench.data.base import TileBatch
from plismbench.errors import InputError
from plismbench.extraction.engine import extract
from plismbench.extractors.registry import load_extractor


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return load_extractor("h0-mini", pretrained=False, depth=1, device="cpu")


def test_layout_meta_and_order(tmp_path: Path) -> None:
    source = MemorySource(n_slides=2, n_tiles=13)
    result = extract("hed-histogram", source, tmp_path, batch_size=4, workers=2, device="cpu")
    assert result.slides_done == ["SLIDE00", "SLIDE01"]
    assert result.tiles == 26
    for sid in source.slide_ids():
        feats = np.load(tmp_path / "hed-histogram" / sid / "features.npy")
        assert feats.dtype == np.float32 and feats.shape == (13, 3 + 96)
        np.testing.assert_array_equal(feats[:, :3], source.coords(sid))
        order = np.lexsort((feats[:, 2], feats[:, 1]))
        np.testing.assert_array_equal(order, np.arange(13))
        meta = json.loads((tmp_path / "hed-histogram" / sid / "meta.json").read_text())
        assert meta["model"] == "hed-histogram" and meta["tile_count"] == 13
        assert meta["precision"] == "fp32" and len(meta["weights_sha256"]) == 64
        assert meta["source"] == {"type": "memory", "slides": 2}
        assert {"torch", "numpy", "timm"} <= set(meta["versions"])
        assert not (tmp_path / "hed-histogram" / sid / ".partial").exists()
    # Same features as calling the extractor directly.
    model = load_extractor("hed-histogram")
    direct = model(torch.from_numpy(source.tiles["SLIDE01"])).numpy()
    feats = np.load(tmp_path / "hed-histogram" / "SLIDE01" / "features.npy")
    np.testing.assert_allclose(feats[:, 3:], direct, rtol=0, atol=1e-6)


def test_skip_done_and_overwrite(tmp_path: Path) -> None:
    source = MemorySource(n_slides=2, n_tiles=5)
    extract("rgb-histogram", source, tmp_path, batch_size=2, workers=0)
    again = extract("rgb-histogram", source, tmp_path, batch_size=2, workers=0)
    assert again.slides_done == [] and again.slides_skipped == ["SLIDE00", "SLIDE01"]
    redo = extract("rgb-histogram", source, tmp_path, batch_size=2, overwrite=True, workers=1)
    assert redo.slides_done == ["SLIDE00", "SLIDE01"]


def test_resume_after_kill_mid_slide_is_identical(tmp_path: Path, tiny_vit) -> None:
    clean = tmp_path / "clean"
    extract(tiny_vit, MemorySource(n_slides=2, n_tiles=24), clean, batch_size=4, chunk_rows=8)
    resumed = tmp_path / "resumed"
    # Killed in the second slide after 16 of its 24 tiles were read.
    crashing = CrashingSource(crash_after=24 + 16, n_slides=2, n_tiles=24)
    with pytest.raises(KeyboardInterrupt):
        extract(tiny_vit, crashing, resumed, batch_size=4, chunk_rows=8, workers=2)
    slide2 = resumed / "h0-mini" / "SLIDE01"
    assert (resumed / "h0-mini" / "SLIDE00" / "features.npy").exists()
    assert not (slide2 / "features.npy").exists()
    assert list((slide2 / ".partial").glob("chunk_*.npy"))
    source = MemorySource(n_slides=2, n_tiles=24)
    result = extract(tiny_vit, source, resumed, batch_size=4, chunk_rows=8, workers=2)
    assert result.slides_skipped == ["SLIDE00"] and result.slides_done == ["SLIDE01"]
    assert 0 < source.reads < 24  # only the rows after the last checkpoint were read
    for sid in ("SLIDE00", "SLIDE01"):
        a = np.load(clean / "h0-mini" / sid / "features.npy")
        b = np.load(resumed / "h0-mini" / sid / "features.npy")
        np.testing.assert_array_equal(a, b)


def test_precision_check(tmp_path: Path, tiny_vit) -> None:
    source = MemorySource(n_slides=1, n_tiles=4)
    result = extract(tiny_vit, source, tmp_path, precision="bf16", check_precision=True,
                     precision_threshold=0.9, batch_size=4)  # fmt: skip
    assert result.worst_cosine is not None and 0.9 < result.worst_cosine <= 1.0 + 1e-9
    with pytest.raises(InputError, match="drift from fp32"):
        extract(tiny_vit, source, tmp_path / "b", precision="bf16", check_precision=True,
                precision_threshold=1.01, batch_size=4)  # fmt: skip
    forced = extract(tiny_vit, source, tmp_path / "c", precision="bf16", check_precision=True,
                     precision_threshold=1.01, force=True, batch_size=4)  # fmt: skip
    assert forced.slides_done == ["SLIDE00"]
    tiny_vit.precision = "fp32"


def test_bad_arguments(tmp_path: Path) -> None:
    source = MemorySource(n_slides=1, n_tiles=2)
    with pytest.raises(InputError, match="batch size"):
        extract("rgb-histogram", source, tmp_path, batch_size=0)
    with pytest.raises(InputError, match="not one of"):
        extract("rgb-histogram", source, tmp_path, precision="fp8")
    with pytest.raises(InputError, match="slides not in the source"):
        extract("rgb-histogram", source, tmp_path, slides=["NOPE"])


_TORCHRUN_SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from extract_memsource import MemorySource
from plismbench.extraction.engine import extract
r = extract("hed-histogram", MemorySource(n_slides=5, n_tiles=6), sys.argv[1], batch_size=4,
            device="cpu", workers=1)
# one file per rank: the ranks share stdout, where their lines can interleave
with open(f"{{sys.argv[1]}}.rank{{r.rank}}", "w") as fh:
    fh.write(" ".join(["RANK", str(r.rank), str(r.world_size), ",".join(r.slides_done)]))
"""


def test_torchrun_two_cpu_processes_match_one(tmp_path: Path) -> None:
    script = tmp_path / "run_extract.py"
    helpers = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(_TORCHRUN_SCRIPT.format(helpers=helpers)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = extract("hed-histogram", MemorySource(n_slides=5, n_tiles=6), tmp_path / "one",
                     batch_size=4, device="cpu")  # fmt: skip
    assert len(single.slides_done) == 5
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(script), str(tmp_path / "two")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = sorted(tmp_path.glob("two.rank*"))
    ranks = sorted(p.read_text().split()[1:] for p in reports)
    assert [r[:2] for r in ranks] == [["0", "2"], ["1", "2"]]
    assert ranks[0][2] == "SLIDE00,SLIDE02,SLIDE04" and ranks[1][2] == "SLIDE01,SLIDE03"
    for sid in MemorySource(n_slides=5).slide_ids():
        a = np.load(tmp_path / "one" / "hed-histogram" / sid / "features.npy")
        b = np.load(tmp_path / "two" / "hed-histogram" / sid / "features.npy")
        np.testing.assert_array_equal(a, b)


def test_writer_failure_raises_instead_of_hanging(tmp_path: Path, monkeypatch) -> None:
    """A chunk write that fails (disk full) while the writer's queue is full must not hang."""
    import threading
    import time

    from plismbench.extraction import writer

    def failing_save(path: object, array: np.ndarray) -> None:
        time.sleep(0.5)  # the model fills the writer's queue meanwhile
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "save_npy", failing_save)
    source = MemorySource(n_slides=1, n_tiles=40, size=32)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            extract("rgb-histogram", source, tmp_path, batch_size=1, chunk_rows=1, workers=0)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "extract hung after the chunk writer failed"
    assert isinstance(outcome.get("error"), OSError)
    assert not (tmp_path / "rgb-histogram" / "SLIDE00" / "features.npy").exists()


class _StreamLikeSource(MemorySource):
    """A source whose every ``iter_batches`` call streams the slide from its first row."""

    sequential = True

    def __init__(self, **kwargs: int):
        super().__init__(**kwargs)
        self.streams = 0

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        self.streams += 1
        self.reads += start  # the rows before ``start`` are fetched too, only not decoded
        yield from super().iter_batches(slide_id, batch_size, start)


def test_sequential_source_is_streamed_once_per_slide(tmp_path: Path) -> None:
    from plismbench.data.sources import HubStreamingSource

    assert HubStreamingSource.sequential is True
    source = _StreamLikeSource(n_slides=1, n_tiles=40, size=32)
    extract("rgb-histogram", source, tmp_path, batch_size=2, workers=3)
    assert source.streams == 1 and source.reads == 40
    feats = np.load(tmp_path / "rgb-histogram" / "SLIDE00" / "features.npy")
    np.testing.assert_array_equal(feats[:, :3], source.coords("SLIDE00"))
