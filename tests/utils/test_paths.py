"""Output folders checked before work starts: one line, and nothing created on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plismbench.errors import InputError
from plismbench.utils.paths import check_free_space, check_writable_dir, ensure_writable_dir


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_check_creates_nothing_and_leaves_no_probe(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert check_writable_dir(target, "--out-dir") == target
    assert check_writable_dir(tmp_path, "--out-dir") == tmp_path
    assert _tree(tmp_path) == []


def test_ensure_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert ensure_writable_dir(target, "--out-dir") == target
    assert target.is_dir() and _tree(tmp_path) == ["a", os.path.join("a", "b")]
    assert ensure_writable_dir(target, "--out-dir") == target  # exists already: fine


def test_under_a_file_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for fn in (check_writable_dir, ensure_writable_dir):
        with pytest.raises(InputError, match=r"^--out-dir .*: .*f is a file, not a folder$"):
            fn(tmp_path / "f" / "sub" / "dir", "--out-dir")
        with pytest.raises(InputError, match="is a file, not a folder"):
            fn(tmp_path / "f", "--out-dir")
    assert _tree(tmp_path) == ["f"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_virtual_filesystem_is_not_writable() -> None:
    for fn in (check_writable_dir, ensure_writable_dir):
        with pytest.raises(InputError, match=r"^--features-dir /proc/plismbench-x/y is not wr"):
            fn("/proc/plismbench-x/y", "--features-dir")
    assert not Path("/proc/plismbench-x").exists()


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_writable_dir("~/out", "--out-dir") == tmp_path / "out"
    assert ensure_writable_dir("~/out", "--out-dir").is_dir()
    assert not Path("~").exists()


def test_free_space(tmp_path: Path) -> None:
    check_free_space(tmp_path / "not" / "yet", 0, "extract")
    with pytest.raises(InputError, match=r"^extract needs about 1000000000 GB free in "):
        check_free_space(tmp_path / "not" / "yet", 10**18, "extract")
    assert _tree(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_under_a_fifo_is_not_a_folder(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match="not a folder"):
        check_writable_dir(tmp_path / "pipe" / "out", "--out-dir")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_the_probe_leaks_no_file_descriptor(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        check_writable_dir(tmp_path / "out", "--out-dir")
    assert len(os.listdir("/proc/self/fd")) == before
