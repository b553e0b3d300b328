"""Locks for work that two processes could meet on.

- `claim()` creates a lock file with ``O_CREAT | O_EXCL``; it holds the owner's pid,
  host and time, so that independent jobs (ranks, a SLURM array, nodes on a shared
  file system) can split work. A lock of a dead process on this host is stale and
  broken; a lock from another host is trusted until released.
- `folder_lock()` takes an exclusive ``fcntl`` lock on a folder's lock file for the
  lifetime of a run; the kernel drops it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plismbench.errors import InputError

LOCK_NAME = ".plismbench.lock"


class LockHeld(InputError):
    """Another process holds the lock."""


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}


def read_owner(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The owner recorded in a lock file (empty when unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(owner: dict[str, Any]) -> bool:
    """True when the owner is a dead process on this host."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("host") != socket.gethostname():
        return False
    return not _alive(pid)


def describe(owner: dict[str, Any]) -> str:
    """``pid 123 on host h`` (or ``an unknown process``)."""
    if "pid" not in owner:
        return "an unknown process"
    return f"pid {owner['pid']} on host {owner.get('host', '?')}"


def claim(path: str | os.PathLike[str]) -> bool:
    """Create the lock file ``path`` atomically; False if a live process holds it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_owner(target)
            if not owner and time.time() - _mtime(target) < 5.0:
                return False  # being written right now
            if owner and not is_stale(owner):
                return False
            with contextlib.suppress(FileNotFoundError):
                target.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(_owner(), fh)
        return True
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def release(path: str | os.PathLike[str]) -> None:
    """Remove a lock file this process created (no-op if gone or not ours)."""
    target = Path(path)
    if read_owner(target).get("pid") in (os.getpid(), None):
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


@contextlib.contextmanager
def Claim(path: str | os.PathLike[str]) -> Iterator[bool]:
    """``with Claim(p) as mine:``; the lock is released on exit when it was taken."""
    mine = claim(path)
    try:
        yield mine
    finally:
        if mine:
            release(path)


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike[str], *, wait: bool | float = False, what: str = "this folder"
) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the duration of the block.

    ``wait=False`` fails at once with `LockHeld` naming the holder; ``True``
    waits for ever; a number waits that many seconds.
    """
    base = Path(folder)
    try:
        base.mkdir(parents=True, exist_ok=True)
        fh = open(base / LOCK_NAME, "a+")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{base}: cannot write there ({exc.strerror or exc})") from None
    deadline = None if wait is True else time.monotonic() + float(wait or 0)
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    owner = read_owner(base / LOCK_NAME)
                    raise LockHeld(
                        f"{base}: {what} is in use by {describe(owner)}; wait for it to "
                        "finish (or stop it) and run again"
                    ) from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_owner()))
        fh.flush()
        yield base
    finally:
        fh.close()  # closing drops the flock
