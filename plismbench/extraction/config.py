"""Every extract option in one typed place: the CLI and the Python API build an ExtractConfig."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from plismbench.errors import InputError
from plismbench.extraction import defaults
from plismbench.extractors.spec import PRECISIONS, ExtractorSpec
from plismbench.utils.paths import check_writable_dir


@dataclass
class ExtractConfig:
    """Options of one extract run (see ``plismbench extract --help``)."""

    batch_size: int = defaults.BATCH_SIZE
    #: Tile-reading threads (0 reads inline).
    workers: int = defaults.WORKERS
    device: str | torch.device = "auto"
    #: ``None``/``"auto"``: the spec's dtype on a GPU, fp32 on a CPU.
    precision: str | None = None
    compile: bool = False
    #: Replace finished slides (and slides made by another model or setting).
    overwrite: bool = False
    weights: str | os.PathLike[str] | None = None
    check_precision: bool = False
    precision_threshold: float = defaults.PRECISION_THRESHOLD
    force: bool = False
    #: Rows per resume checkpoint.
    chunk_rows: int = defaults.CHUNK_ROWS
    #: Only these slide ids (default: every slide of the source).
    slides: list[str] | None = None
    #: Intermediate layers to store too: ``"all"``, ``"4,8,12"`` or a list of 1-based blocks.
    layers: str | Sequence[int] | None = None
    #: At the end, wait for slides that other live processes are extracting (and take over
    #: those whose process died) instead of returning at once.
    wait: bool = True
    #: A claim from another host whose heartbeat is older than this is considered dead.
    stale_after_s: float = 600.0
    #: Seconds between two looks at a slide another process holds.
    poll_s: float = 1.0
    log: Callable[[str], None] | None = None
    progress: bool = False
    #: Override the model's pooling (``cls``, ``mean``, ``cls+mean``); features go to
    #: ``<model>-<pooling>/``. ``None`` keeps the registry's default.
    pooling: str | None = None
    #: Hub revision (branch, tag or commit) of the weights; ``None`` is ``main``.
    revision: str | None = None

    def validate(self) -> None:
        """One line for the first bad value."""
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if self.chunk_rows < 1:
            raise InputError(f"chunk rows must be >= 1, got {self.chunk_rows}")
        if self.workers < 0:
            raise InputError(f"workers must be >= 0, got {self.workers}")
        if self.pooling not in (None, *OVERRIDABLE_POOLINGS):
            raise InputError(
                f"pooling {self.pooling!r} is not one of {', '.join(OVERRIDABLE_POOLINGS)}"
            )
        if self.precision not in (None, "auto", *PRECISIONS):
            raise InputError(
                f"precision {self.precision!r} is not one of auto, {', '.join(PRECISIONS)}"
            )

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    @classmethod
    def from_options(cls, config: ExtractConfig | None, options: dict[str, Any]) -> ExtractConfig:
        """``config`` (or the defaults) with keyword ``options`` applied on top."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"extract() got unknown options: {', '.join(unknown)}")
        base = config if config is not None else cls()
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        values.update(options)
        return cls(**values)


#: Poolings ``--pooling`` can choose (``model`` is the model's own output, not a choice).
OVERRIDABLE_POOLINGS = ("cls", "mean", "cls+mean")


def with_overrides(spec: ExtractorSpec, pooling: str | None, revision: str | None) -> ExtractorSpec:
    """The spec with ``--pooling`` and ``--revision`` applied (a pooling change renames it)."""
    from dataclasses import replace

    if revision is not None:
        if not spec.hub_id:
            raise InputError(f"--revision: model {spec.name!r} is not loaded from the Hub")
        spec = replace(spec, revision=revision)
    if pooling is None or pooling == spec.pooling:
        return spec
    if pooling not in OVERRIDABLE_POOLINGS:
        raise InputError(f"pooling {pooling!r} is not one of {', '.join(OVERRIDABLE_POOLINGS)}")
    if spec.pooling == "model" or not spec.normalise:
        raise InputError(
            f"--pooling: model {spec.name!r} returns one vector per tile (pooling 'model'); "
            "its tokens are not exposed"
        )
    width = spec.embed_dim // 2 if spec.pooling == "cls+mean" else spec.embed_dim
    return replace(
        spec,
        name=f"{spec.name}-{pooling.replace('+', '-')}",
        pooling=pooling,  # type: ignore[arg-type]
        embed_dim=2 * width if pooling == "cls+mean" else width,
        pooling_reason=f"--pooling {pooling} (default {spec.pooling})",
        aliases=(),
    )


def resolve_precision(precision: str | None, spec: ExtractorSpec, device: torch.device) -> str:
    """The spec's preferred dtype on a GPU, fp32 on a CPU, unless asked otherwise."""
    if precision is None or precision == "auto":
        return spec.dtype if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 autocast is not supported on CPU; use bf16 or fp32")
    return precision


def check_writable(folder: Path) -> None:
    """One line when features cannot be written under ``folder`` (nothing is created)."""
    check_writable_dir(folder, "--out-dir")
