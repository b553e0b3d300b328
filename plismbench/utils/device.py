"""Choosing the torch device for a process (this rank's GPU under torchrun)."""

from __future__ import annotations

import torch

from plismbench.errors import no_cuda_error, unknown_device_error


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """``auto`` picks the GPU (this rank's under torchrun) when there is one."""
    text = str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda":
        if not torch.cuda.is_available():
            raise no_cuda_error()
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        return torch.device(text)
    except RuntimeError:
        raise unknown_device_error(text) from None
