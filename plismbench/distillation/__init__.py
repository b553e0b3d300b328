"""``plismbench distill``: DINO + iBOT distillation of a teacher into a small ViT student.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from plismbench.distillation.config import DistillConfig, resolve_config
from plismbench.distillation.runfolder import DistillResult

if TYPE_CHECKING:
    from plismbench.data.base import TileSource

__all__ = ["DistillConfig", "DistillResult", "distill"]


def distill(
    teacher: str | None = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    source: TileSource | None = None,
    tiles_dir: str | os.PathLike[str] | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    streaming: bool = False,
    parquet: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    preset: str | None = None,
    dry_run: bool = False,
    **options: Any,
) -> DistillResult:
    """Distil ``teacher`` into a fresh student; write ``output_dir/{config.yaml,
    metrics.jsonl, checkpoint.pt, student/}``.

    ``teacher``: a registry name, ``hf-hub:org/name``, an exported folder or ``timm:ARCH``
    (random weights). Tiles come from ``corpus`` (a folder of images with any names,
    parquet, tar or h5 shards) or, with a loud warning, a PLISM source (``source`` or one
    of ``tiles_dir``, ``download_dir``, ``streaming``, ``parquet``). ``options`` are the
    fields of :class:`DistillConfig`; they override ``config`` (a YAML file), which
    overrides ``preset`` (``h0-mini``). Under ``torchrun`` the student trains with DDP.
    ``dry_run``: check everything, write only ``output_dir/config.yaml`` (the resolved
    options and schedule) and return without building a model or reading a tile.
    """
    if source is None and any((tiles_dir, download_dir, streaming, parquet)):
        from plismbench.data.sources import open_source

        source = open_source(
            download_dir=download_dir, streaming=streaming, tiles_dir=tiles_dir, parquet=parquet
        )
    if corpus is not None and source is not None:
        from plismbench.errors import InputError

        raise InputError("choose --corpus or a PLISM tile source option, not both")
    given = {"teacher": teacher, "output_dir": output_dir,
             "corpus": None if corpus is None else str(corpus), **options}  # fmt: skip
    cfg = resolve_config(given, config, preset)
    if dry_run:
        from plismbench.distillation.runfolder import dry_run as write_dry_run

        return write_dry_run(cfg)
    from plismbench.distillation.loop import run_distill  # torch: only when training

    return run_distill(cfg, source)
