"""Content digests: caches and provenance key on bytes, never on mtimes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only for state dicts: evaluate and leaderboard never import it
    import torch

_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike[str], algo: str = "blake2b") -> str:
    """Hex digest of a file's bytes, streamed in 1 MiB blocks (about 1 s per GB)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def bytes_digest(data: bytes, algo: str = "blake2b") -> str:
    """Hex digest of ``data``."""
    return hashlib.new(algo, data).hexdigest()


def tensor_state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict: names, dtypes, shapes and values, in sorted key order.

    Take it before ``torch.compile`` (which renames parameters) so that the same
    weights always give the same digest.
    """
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
