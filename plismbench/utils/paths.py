"""Output folders checked before long work starts: one line instead of a late traceback."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from plismbench.errors import InputError


def ensure_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Create ``path`` if needed and check that a file can be written in it.

    ``what`` names the option (e.g. ``--output-dir``) in the one-line error: a path under
    a file, a read-only or virtual filesystem (``/proc/x``), or no permission.
    """
    folder = Path(path).expanduser()
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what} {folder}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".plismbench-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"{what} {folder} is not writable: {exc.strerror or exc}"
        ) from None
    return folder


def check_free_space(path: str | os.PathLike[str], need_bytes: int, what: str) -> None:
    """One line when the filesystem of ``path`` has less than ``need_bytes`` free."""
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        raise InputError(
            f"{what} needs about {need_bytes / 1e9:.0f} GB free in {path}, only "
            f"{free / 1e9:.0f} GB are; free some space or choose another folder"
        )
