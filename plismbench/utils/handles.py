"""Open file handles cached per process and per thread, the oldest closed first."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class HandleCache:
    """Open handles (files, h5py or pyarrow objects) per process and per thread.

    Never shared across a fork nor between threads; the oldest are closed beyond
    ``max_open``. Pickles empty, so a corpus holding one can go to spawned workers.
    """

    def __init__(self, max_open: int = 32) -> None:
        self.max_open = max_open
        self._pid: int | None = None
        self._local: threading.local | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "_pid": None, "_local": None}

    def get(self, key: Any, opener: Callable[[], Any]) -> Any:
        """The handle for ``key``, opened with ``opener()`` the first time in this thread."""
        if self._pid != os.getpid() or self._local is None:
            self._local = threading.local()  # the parent's handles are left alone
            self._pid = os.getpid()
        handles: OrderedDict[Any, Any] | None = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = OrderedDict()
        if key in handles:
            handles.move_to_end(key)
            return handles[key]
        handle = handles[key] = opener()
        while len(handles) > self.max_open:
            _, old = handles.popitem(last=False)
            close = getattr(old, "close", None)
            if close is not None:
                close()
        return handle

    def clear(self) -> None:
        """Close this thread's handles (e.g. those opened to index, before workers fork)."""
        handles = getattr(self._local, "handles", None) if self._pid == os.getpid() else None
        while handles:
            _, old = handles.popitem(last=False)
            close = getattr(old, "close", None)
            if close is not None:
                close()
