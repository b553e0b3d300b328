"""Waiting for another process in tests: a hang guard, never a speed assertion."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(ready: Callable[[], bool], what: str, guard_s: float = 120.0) -> None:
    """Poll ``ready()``; fail with ``what`` instead of hanging if it never comes."""
    stop = time.monotonic() + guard_s
    while not ready():
        if time.monotonic() > stop:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)
