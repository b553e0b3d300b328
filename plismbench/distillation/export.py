"""Write the EMA student as a timm folder that ``plismbench extract --model`` loads.

Layout (timm ``save_pretrained`` style): ``config.json`` with ``architecture``,
``model_args``, ``num_features`` and ``pretrained_cfg`` (mean, std, input size), plus a
``plismbench`` block (name, pooling, prefix tokens), and ``model.safetensors``.

As for bioptimus/H0-mini, layers JSON cannot hold (``mlp_layer``, ``act_layer``) are not
in ``model_args``: plain timm loads the folder with them passed explicitly::

    timm.create_model("local-dir:RUN/student", pretrained=True,
                      mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU)

and the ``plismbench`` block names them for ``plismbench extract --model RUN/student``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plismbench.utils.io import atomic_path, write_json

__all__ = ["export_student", "student_config"]


def student_config(
    arch: str,
    model_args: dict[str, Any],
    *,
    name: str,
    num_features: int,
    num_prefix_tokens: int,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of an exported student (JSON-only values)."""
    args = {k: (v if isinstance(v, (int, float, str, bool, list)) or v is None else str(v))
            for k, v in model_args.items()}  # fmt: skip
    layers = {k: args.pop(k) for k in ("mlp_layer", "act_layer") if k in args}
    return {
        "architecture": arch,
        "num_classes": 0,
        "num_features": num_features,
        "global_pool": "token",
        "model_args": args,
        "pretrained_cfg": {
            "tag": "plismbench-distill",
            "input_size": [3, image_size, image_size],
            "interpolation": "bicubic",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": list(mean),
            "std": list(std),
            "num_classes": 0,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        "plismbench": {
            "name": name,
            "pooling": "cls",
            "num_prefix_tokens": num_prefix_tokens,
            **layers,
            "distill": provenance or {},
        },
    }


def export_student(
    backbone: nn.Module, directory: str | os.PathLike[str], config: dict[str, Any]
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of ``backbone`` into ``directory``."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in
             backbone.state_dict().items()}  # fmt: skip
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_json(out / "config.json", config)
    return out
