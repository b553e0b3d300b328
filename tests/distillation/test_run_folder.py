"""The run folder (issue 22): a refused command writes nothing, learnt heads are part of the
fingerprint, unreadable tiles are skipped deterministically, the head phase is visible and
resumable. Tiny models (depth 1, 28 px, K = 32) so that each run takes a second or two."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from plismbench.distillation import distill
from plismbench.distillation import step as step_mod
from plismbench.distillation.step import METRIC_KEYS
from plismbench.errors import InputError

TEACHER = "timm:vit_small_patch14_reg4_dinov2"
TINY: dict[str, Any] = {
    "student": "vit-tiny", "image_size": 28, "prototypes": 32, "batch_size": 4,
    "device": "cpu", "progress": False, "workers": 0, "teacher_heads": "random",
    "teacher_overrides": {"depth": 1}, "student_overrides": {"depth": 1},
}  # fmt: skip


def _corpus(root: Path, n: int = 16, corrupt: int | None = None) -> Path:
    """``n`` 32 px noise tiles with arbitrary names; tile ``corrupt`` (sorted order) is a JPEG
    whose bytes are garbage."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        if i == corrupt:
            (root / f"t{i:03d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg" + bytes(200))
        else:
            tile = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(tile).save(root / f"t{i:03d}.png")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("c") / "tiles")


def test_a_refused_resume_leaves_the_run_folder_byte_identical(tiles: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    distill(TEACHER, output_dir=run, corpus=tiles, steps=2, **TINY)
    before = _snapshot(run)
    with pytest.raises(InputError, match="was written with steps=2, this run has steps=3"):
        distill(TEACHER, output_dir=run, corpus=tiles, steps=3, resume=True, **TINY)
    with pytest.raises(InputError, match="pass --resume"):
        distill(TEACHER, output_dir=run, corpus=tiles, steps=3, **TINY)
    assert _snapshot(run) == before
    # --overwrite starts it again
    distill(TEACHER, output_dir=run, corpus=tiles, steps=1, overwrite=True, **TINY)
    assert [m["step"] for m in _metrics(run)] == [0]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1
    # a run refused while building its models creates nothing
    fresh = tmp_path / "fresh"
    with pytest.raises(InputError, match="patch tokens"):
        distill(TEACHER, output_dir=fresh, corpus=tiles, steps=1,
                **{**TINY, "student": "timm:vit_tiny_patch16_224"})  # fmt: skip
    assert not fresh.exists()


LEARN = {**TINY, "teacher_heads": "learn", "learn_heads_steps": 3, "checkpoint_every": 1}


@pytest.fixture(scope="module")
def learnt(tiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with 3 steps of head learning."""
    run = tmp_path_factory.mktemp("learnt") / "run"
    distill(TEACHER, output_dir=run, corpus=tiles, steps=1, **LEARN)
    return run


def test_stale_teacher_heads_are_refused_or_relearnt(
    learnt: Path, tiles: Path, tmp_path: Path
) -> None:
    """The audit: a folder holding teacher_heads.pt but no checkpoint silently reused heads
    learnt with other options (another K: a 55-line RuntimeError)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(learnt, run)
    (run / "checkpoint.pt").unlink()
    before = _snapshot(run)
    with pytest.raises(InputError, match="learn_heads_steps=3, this run has learn_heads_steps=2"):
        distill(TEACHER, output_dir=run, corpus=tiles, steps=1, **{**LEARN, "learn_heads_steps": 2})
    with pytest.raises(InputError, match="prototypes=32, this run has prototypes=48"):
        distill(TEACHER, output_dir=run, corpus=tiles, steps=1, **{**LEARN, "prototypes": 48})
    assert _snapshot(run) == before
    distill(TEACHER, output_dir=run, corpus=tiles, steps=1, overwrite=True,
            **{**LEARN, "prototypes": 48})  # fmt: skip
    saved = torch.load(run / "teacher_heads.pt", weights_only=True)
    assert saved["fingerprint"]["prototypes"] == 48 and saved["step"] == 3
    assert saved["heads"]["dino_head.last_layer.weight_v"].shape[0] == 48
    assert [m["phase"] for m in _metrics(run)] == ["heads"] * 3 + ["distill"]


def test_head_phase_is_logged_resumable_and_keeps_gains_at_one(
    learnt: Path, tiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = LEARN
    ref = learnt
    rows = _metrics(ref)
    assert [(m["phase"], m["step"]) for m in rows] == [
        ("heads", 0), ("heads", 1), ("heads", 2), ("distill", 0)]  # fmt: skip
    assert all(math.isfinite(m["loss"]) and m["loss"] == m["loss_dino"] + m["loss_ibot"]
               for m in rows[:3])  # fmt: skip
    heads = torch.load(ref / "teacher_heads.pt", weights_only=True)["heads"]
    for name in ("dino_head", "ibot_head"):
        assert torch.equal(heads[f"{name}.last_layer.weight_g"],
                           torch.ones_like(heads[f"{name}.last_layer.weight_g"]))  # fmt: skip

    # killed during head step 2: the next run resumes the head phase at step 2
    from plismbench.distillation import learn_heads as lh

    real_views, calls = lh.views, []

    def dying_views(*args: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_views(*args)

    killed = tmp_path / "killed"
    monkeypatch.setattr(lh, "views", dying_views)
    with pytest.raises(KeyboardInterrupt):
        distill(TEACHER, output_dir=killed, corpus=tiles, steps=1, **options)
    assert torch.load(killed / "teacher_heads.pt", weights_only=True)["step"] == 2
    assert [m["step"] for m in _metrics(killed)] == [0, 1]
    monkeypatch.setattr(lh, "views", real_views)
    distill(TEACHER, output_dir=killed, corpus=tiles, steps=1, **options)
    assert [(m["phase"], m["step"]) for m in _metrics(killed)] == [
        (m["phase"], m["step"]) for m in rows]  # fmt: skip
    resumed = torch.load(killed / "teacher_heads.pt", weights_only=True)["heads"]
    for key, value in heads.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_one_corrupt_tile_among_64_is_skipped_and_resume_skips_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _corpus(tmp_path / "corpus", n=64, corrupt=37)
    options = {**TINY, "batch_size": 16, "checkpoint_every": 2}
    ref = tmp_path / "ref"
    result = distill(TEACHER, output_dir=ref, corpus=corpus, steps=4, **options)  # one epoch
    assert result.skipped_tiles == 1
    rows = _metrics(ref)
    assert rows[-1]["skipped_tiles"] == 1 and rows[0]["skipped_tiles"] <= 1
    logged = [line for line in capsys.readouterr().err.splitlines() if "t037.jpg" in line]
    assert len(logged) == 1 and str(corpus / "t037.jpg") in logged[0]  # the path, once

    real_step, calls = step_mod.train_step, []

    def dying_step(st: Any, i: int, x: torch.Tensor) -> dict[str, Any]:
        if i == 3:
            raise KeyboardInterrupt
        calls.append(i)
        return real_step(st, i, x)

    killed = tmp_path / "killed"
    step_mod.train_step = dying_step  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            distill(TEACHER, output_dir=killed, corpus=corpus, steps=4, **options)
    finally:
        step_mod.train_step = real_step  # type: ignore[assignment]
    distill(TEACHER, output_dir=killed, corpus=corpus, steps=4, resume=True, **options)
    again = _metrics(killed)
    assert len(again) == len(rows) == 4
    for a, b in zip(rows, again, strict=True):
        for key in (*METRIC_KEYS, "skipped_tiles"):
            assert a[key] == b[key], (a["step"], key)

    with pytest.raises(InputError, match=r"t037\.jpg.*|unreadable tiles, more than"):
        distill(TEACHER, output_dir=tmp_path / "strict", corpus=corpus, steps=4,
                max_bad_tiles=0.0, **options)  # fmt: skip


def test_the_loader_substitutes_unreadable_tiles_through_workers(tmp_path: Path) -> None:
    from plismbench.distillation.corpus import CorpusLoader, open_corpus

    corpus = open_corpus(_corpus(tmp_path / "c", n=8, corrupt=3))
    with CorpusLoader(corpus, global_batch=8, seed=0, workers=1, steps=2,
                      max_bad_tiles=0.2) as loader:  # fmt: skip
        batches = list(loader)
    assert [len(b) for b in batches] == [8, 8] and list(loader.bad) == [3]
    assert "t003.jpg" in loader.bad[3]
    # the substitute is the next tile of the corpus: tile 4 appears twice in each epoch
    first = batches[0]
    assert sum(any(np.array_equal(t, u) for u in first) for t in first) == 8
    four = corpus.read([4])[0]
    assert sum(np.array_equal(t, four) for t in first) == 2


def test_a_tar_gz_corpus_gets_the_specific_refusal(tmp_path: Path) -> None:
    from plismbench.distillation.corpus import open_corpus

    (tmp_path / "d").mkdir()
    for path in (tmp_path / "shard-0.tar.gz", tmp_path / "d" / "shard-1.tgz"):
        path.write_bytes(b"\x1f\x8b" + bytes(30))
    for spec in (tmp_path / "shard-0.tar.gz", tmp_path / "d", str(tmp_path / "*.tar.gz")):
        with pytest.raises(InputError, match="compressed tar cannot be read by offset"):
            open_corpus(spec)


def test_default_workers_follow_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from plismbench.distillation.config import config_from

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert config_from(teacher="t").workers == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert config_from(teacher="t").workers == 4
    assert config_from(teacher="t", workers=7).workers == 7


def test_a_student_bigger_than_its_teacher_warns() -> None:
    from plismbench.distillation.build import build
    from plismbench.distillation.config import config_from
    from plismbench.distillation.loop import _size_warning

    small = config_from(teacher=TEACHER, output_dir="unused", **TINY)
    assert _size_warning(build(small, torch.device("cpu"))) is None
    big = config_from(teacher=TEACHER, output_dir="unused",
                      **{**TINY, "student": "vit-base"})  # fmt: skip
    text = _size_warning(build(big, torch.device("cpu")))
    assert text is not None and "more parameters" in text and "vit-base" in text
