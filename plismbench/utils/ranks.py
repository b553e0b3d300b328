"""torchrun's process ranks from the environment, without importing torch."""

from __future__ import annotations

import os


def env_ranks() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Rank 0, or a single process: the one that writes shared outputs and prints."""
    return env_ranks()[0] == 0


def under_torchrun() -> bool:
    """Started by torchrun (``WORLD_SIZE`` is set)."""
    return "WORLD_SIZE" in os.environ
