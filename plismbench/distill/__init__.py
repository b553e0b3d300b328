"""``plismbench distill``: DINO + iBOT distillation of a teacher into a small ViT student.

The module is callable: ``plismbench.distill(...)`` is :func:`distill`.
"""

from __future__ import annotations

import os
from typing import Any

from plismbench.data.base import TileSource
from plismbench.distill.train import DistillConfig, DistillResult, config_from, run_distill

__all__ = ["DistillConfig", "DistillResult", "distill"]


def distill(
    teacher: str,
    *,
    output_dir: str | os.PathLike[str],
    source: TileSource | None = None,
    tiles_dir: str | os.PathLike[str] | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    streaming: bool = False,
    parquet: str | os.PathLike[str] | None = None,
    **options: Any,
) -> DistillResult:
    """Distil ``teacher`` into a fresh student; write ``output_dir/{metrics.jsonl,
    checkpoint.pt,student/}``.

    ``teacher``: a registry name, ``hf-hub:org/name``, an exported folder or ``timm:ARCH``
    (random weights). Tiles come from ``source`` or exactly one of ``tiles_dir``,
    ``download_dir``, ``streaming``, ``parquet``. ``options`` are the fields of
    :class:`DistillConfig` (``student``, ``loss``, ``steps``, ``batch_size``, ...).
    Under ``torchrun`` the student is trained with DDP on every rank.
    """
    from pathlib import Path

    if source is None:
        from plismbench.data.sources import open_source

        source = open_source(
            download_dir=download_dir, streaming=streaming, tiles_dir=tiles_dir, parquet=parquet
        )
    cfg = config_from(teacher=teacher, output_dir=Path(output_dir), **options)
    return run_distill(cfg, source)


from plismbench.utils.callable_module import make_callable  # noqa: E402

make_callable(__name__, distill)
