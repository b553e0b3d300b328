"""Output folders checked before long work starts: one line instead of a late traceback."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from plismbench.errors import InputError


def check_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Check, creating nothing, that ``path`` can be created (if needed) and written.

    The nearest existing folder at or above ``path`` must be a folder where a file can be
    written (probed with a temporary file, removed at once). ``what`` names the option
    (e.g. ``--out-dir``) in the one-line error: a path under a file, a read-only or virtual
    filesystem (``/proc/x``), or no permission. A command that checks first and creates its
    folders only when it writes leaves nothing behind when it fails before writing.
    """
    folder = Path(path).expanduser()
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InputError(f"{what} {folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".plismbench-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None
    return folder


def ensure_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """:func:`check_writable_dir`, then create the folder (for steps about to write)."""
    folder = check_writable_dir(path, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None
    return folder


def check_free_space(path: str | os.PathLike[str], need_bytes: int, what: str) -> None:
    """One line when the filesystem of ``path`` has less than ``need_bytes`` free."""
    where = next(p for p in (Path(path), *Path(path).parents) if p.exists() or p == p.parent)
    free = shutil.disk_usage(where).free
    if free < need_bytes:
        raise InputError(
            f"{what} needs about {need_bytes / 1e9:.0f} GB free in {path}, only "
            f"{free / 1e9:.0f} GB are; free some space or choose another folder"
        )
