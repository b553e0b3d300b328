"""Per-slide claims: independent processes split the slides of one export dir.

Each slide is claimed with an ``O_CREAT|O_EXCL`` lock file (``<slide>/.claim``,
`plismbench.utils.locks.claim()`) holding the pid, host and time. A process skips
slides that a live process holds and takes the next, so a SLURM array or several nodes
on a shared file system need no torchrun. A claim of a dead process on this host is
broken at once; one from another host is kept fresh by a heartbeat (its mtime) and is
considered dead once the heartbeat is older than ``stale_after_s``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from plismbench.utils.locks import claim, describe, is_stale, read_owner, release

CLAIM = ".claim"


def claim_path(slide_dir: Path) -> Path:
    return slide_dir / CLAIM


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class Claims:
    """The slides this process holds; a daemon thread refreshes their heartbeat."""

    def __init__(self, stale_after_s: float = 600.0):
        self.stale_after_s = stale_after_s
        self.held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _dead_elsewhere(self, path: Path) -> bool:
        owner = read_owner(path)
        other_host = owner.get("host") not in (None, socket.gethostname())
        return other_host and _age(path) > self.stale_after_s

    def holder(self, slide_dir: Path) -> str | None:
        """Who holds the slide (``pid 12 on host h``), or ``None`` when nobody alive does."""
        path = claim_path(slide_dir)
        if not path.exists():
            return None
        owner = read_owner(path)
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            return None
        if (owner and is_stale(owner)) or self._dead_elsewhere(path):
            return None
        return describe(owner)

    def take(self, slide_dir: Path) -> bool:
        """Claim the slide; False when another live process holds it."""
        path = claim_path(slide_dir)
        mine = claim(path)
        if not mine and self._dead_elsewhere(path):
            stale = read_owner(path)
            if read_owner(path) == stale:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            mine = claim(path)
        if mine:
            with self._lock:
                self.held.add(path)
            self._start()
        return mine

    def drop(self, slide_dir: Path) -> None:
        path = claim_path(slide_dir)
        with self._lock:
            self.held.discard(path)
        release(path)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        period = max(0.5, min(30.0, self.stale_after_s / 4))
        while not self._stop.wait(period):
            with self._lock:
                paths = list(self.held)
            for path in paths:
                with contextlib.suppress(OSError):
                    os.utime(path)

    def close(self) -> None:
        """Release every claim still held (also on Ctrl-C or an error)."""
        self._stop.set()
        with self._lock:
            paths = list(self.held)
            self.held.clear()
        for path in paths:
            release(path)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
