"""``--plugin`` for the concurrency tests: an RGB histogram that waits, so two runs overlap.

``SLOW_SLEEP`` seconds per batch; with ``SLOW_BARRIER`` (a folder) and ``SLOW_PARTIES``, the
first batch of each process waits until that many processes have reached theirs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

import plismbench
from plismbench.extractors.baselines import RGBHistogram


class SlowHistogram(RGBHistogram):
    def __init__(self) -> None:
        super().__init__()
        self.first = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        barrier = os.environ.get("SLOW_BARRIER")
        if barrier and self.first:
            self.first = False
            Path(barrier, f"ready-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            parties = int(os.environ.get("SLOW_PARTIES", "2"))
            while len(list(Path(barrier).glob("ready-*"))) < parties:
                if time.monotonic() > deadline:
                    raise RuntimeError("the other process never reached its first batch")
                time.sleep(0.05)
        time.sleep(float(os.environ.get("SLOW_SLEEP", "0")))
        return super().forward(x)


@plismbench.register_extractor(
    name="slow-rgb", embed_dim=96, pooling="model", num_prefix_tokens=0, input_size=0,
    normalise=False, overwrite=True,
)  # fmt: skip
def build(spec: Any, *, pretrained: bool = True, **overrides: Any) -> torch.nn.Module:
    return SlowHistogram()
