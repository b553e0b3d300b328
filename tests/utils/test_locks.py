"""Lock files (O_EXCL claims) and folder locks (fcntl)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from plismbench.utils.locks import Claim, LockHeld, claim, folder_lock, read_owner, release


def test_claim_is_exclusive_and_records_owner(tmp_path: Path) -> None:
    lock = tmp_path / "a" / "slide.lock"
    assert claim(lock)
    assert not claim(lock)
    owner = read_owner(lock)
    assert owner["host"] == socket.gethostname() and isinstance(owner["pid"], int)
    release(lock)
    assert not lock.exists()
    assert claim(lock)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_dead_process_is_broken(tmp_path: Path) -> None:
    lock = tmp_path / "slide.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "time": 0}))
    assert claim(lock)
    assert read_owner(lock)["pid"] != 0


def test_lock_from_another_host_is_trusted(tmp_path: Path) -> None:
    lock = tmp_path / "slide.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere", "time": 0}))
    assert not claim(lock)


def test_claim_context_releases(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with Claim(lock) as mine:
        assert mine and lock.exists()
    assert not lock.exists()


def test_folder_lock_names_the_holder(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from plismbench.utils.locks import folder_lock\n"
        f"with folder_lock({str(tmp_path)!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=f"pid {proc.pid}"), folder_lock(tmp_path):
            pass
    finally:
        proc.kill()
        proc.wait()
    with folder_lock(tmp_path, wait=5):  # the kernel dropped the dead holder's lock
        pass


def test_folder_lock_unwritable_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception, match="cannot write there"), folder_lock(blocker / "sub"):
        pass


def test_folder_lock_waits_for_release(tmp_path: Path) -> None:
    """A waiting lock is granted only after the holder (another process) releases it."""
    release_file = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from plismbench.utils.locks import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n"
         "    print('held', flush=True)\n"
         "    while not pathlib.Path(sys.argv[2]).exists():\n"
         "        time.sleep(0.05)\n"
         "    pathlib.Path(sys.argv[3]).write_text('released')\n",
         str(tmp_path / "d"), str(release_file), str(tmp_path / "done")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld), folder_lock(tmp_path / "d", wait=False):
            pass
        release_file.write_text("go")
        with folder_lock(tmp_path / "d", wait=60):
            # granted: the holder wrote its marker before its lock was released
            assert (tmp_path / "done").read_text() == "released"
    finally:
        holder.wait(timeout=60)
