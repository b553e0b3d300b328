"""Small builders that turn an :class:`ExtractorSpec` into a backbone module.

The spec's typed architecture says what to build: :class:`~plismbench.extractors.archs.TimmArch`
for timm models (random builds and ``--weights`` use all its fields, the Hub build the card's).
``transformers`` and CONCH models are built in :mod:`plismbench.extractors.loaders_hf`.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path
from typing import Any

import torch

from plismbench.errors import InputError
from plismbench.extractors.spec import ExtractorSpec


def require(spec: ExtractorSpec) -> None:
    """Import the optional packages a spec declares; one clear line if one is missing."""
    for module, hint in spec.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            raise InputError(
                f"model {spec.name!r} needs the optional package {module!r}, which is not "
                f"installed: {hint}"
            ) from None


class TimmBackbone(torch.nn.Module):
    """A timm model: tokens from ``forward_features`` or the model's own pooled output."""

    def __init__(self, model: torch.nn.Module, tokens: bool):
        super().__init__()
        self.model = model
        self.tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens:
            return self.model.forward_features(x)  # type: ignore[operator]
        return self.model(x)


def resolve_layer(value: Any) -> Any:
    """``"SwiGLUPacked"`` / ``"silu"`` style strings to timm layers (JSON-held model_args)."""
    if not isinstance(value, str):
        return value
    import timm.layers

    short = value.rsplit(".", 1)[-1]
    if hasattr(timm.layers, short):
        return getattr(timm.layers, short)
    if hasattr(torch.nn, short):
        return getattr(torch.nn, short)
    return timm.layers.get_act_layer(short.lower())


def timm_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """``timm.create_model("hf-hub:...")`` for pretrained, the declared architecture otherwise."""
    import timm

    require(spec)
    arch = spec.timm
    tokens = spec.pooling != "model"
    if pretrained:
        if not spec.hub_id:
            raise InputError(f"model {spec.name!r} declares no Hub id to load weights from")
        card = arch.card_kwargs() if arch is not None else {}
        name = f"hf-hub:{spec.hub_id}" + (f"@{spec.revision}" if spec.revision else "")
        model = timm.create_model(name, pretrained=True, **{**card, **overrides})
    else:
        if arch is None:
            raise InputError(
                f"model {spec.name!r} declares no timm architecture for a random build"
            )
        model = timm.create_model(arch.model, pretrained=False, **{**arch.kwargs(), **overrides})
    return TimmBackbone(model, tokens=tokens)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch checkpoint (``weights_only``)."""
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"weights file {path} cannot be read: {exc}") from None
    for key in ("state_dict", "model", "teacher"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise InputError(f"weights file {path} holds no state dict")
    return obj


def strip_prefixes(
    state: dict[str, torch.Tensor], prefixes: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes such as ``module.`` from every key that has them."""
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _resample_pos_embed(target: torch.nn.Module, value: torch.Tensor) -> torch.Tensor | None:
    """A checkpoint ``pos_embed`` on another patch grid, resampled to the model's grid."""
    from timm.layers import resample_abs_pos_embed

    current = getattr(target, "pos_embed", None)
    grid = getattr(getattr(target, "patch_embed", None), "grid_size", None)
    if not isinstance(current, torch.Tensor) or grid is None or value.ndim != 3:
        return None
    prefix = int(getattr(target, "num_prefix_tokens", 1))
    if getattr(target, "no_embed_class", False):
        prefix = 0
    side = math.isqrt(int(value.shape[1] - prefix))
    if side * side + prefix != value.shape[1] or value.shape[2] != current.shape[2]:
        return None
    return resample_abs_pos_embed(
        value, new_size=list(grid), old_size=[side, side], num_prefix_tokens=prefix
    )


def load_into(
    spec: ExtractorSpec, backbone: torch.nn.Module, state: dict[str, torch.Tensor], source: str
) -> None:
    """Load ``state`` into the backbone's inner model strictly; one clear line on mismatch.

    A ``pos_embed`` trained on another patch grid is resampled (timm
    ``resample_abs_pos_embed``); any other shape mismatch names the keys.
    """
    target = getattr(backbone, "model", backbone)
    state = strip_prefixes(state, ("module.", "_orig_mod."))
    if spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
    expected = target.state_dict()
    wrong = []
    for key, value in list(state.items()):
        want = expected.get(key)
        if want is None or tuple(want.shape) == tuple(value.shape):
            continue
        fixed = _resample_pos_embed(target, value) if key == "pos_embed" else None
        if fixed is not None and fixed.shape == want.shape:
            state[key] = fixed
        else:
            wrong.append(f"{key} {tuple(value.shape)} vs {tuple(want.shape)}")
    if wrong:
        raise InputError(
            f"weights {source} do not fit model {spec.name!r}: {len(wrong)} keys with other "
            f"shapes (checkpoint vs model): {'; '.join(wrong[:4])}"
            + (", ..." if len(wrong) > 4 else "")
        )
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"weights {source} do not fit model {spec.name!r}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )


def url_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """A timm architecture with weights from a release URL (cached by ``torch.hub``)."""
    backbone = timm_loader(spec, pretrained=False, **overrides)
    if pretrained:
        if not spec.url:
            raise InputError(f"model {spec.name!r} declares no weights URL")
        file_name = spec.weights_file
        try:
            raw = torch.hub.load_state_dict_from_url(
                spec.url, map_location="cpu", file_name=file_name, weights_only=True
            )
        except Exception as exc:
            raise InputError(
                f"cannot fetch the weights of {spec.name!r} from {spec.url} ({exc}); download "
                "the file and pass it with --weights"
            ) from None
        for key in ("teacher", "state_dict", "model"):
            if isinstance(raw, dict) and key in raw and isinstance(raw[key], dict):
                raw = raw[key]
                break
        load_into(spec, backbone, raw, spec.url)
    return backbone


# --- checkpoint converters -------------------------------------------------------------------


def convert_dinov2_chunks(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DINOv2 training checkpoint (``backbone.``, chunked blocks, heads) to timm keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("backbone.")
        if key == "mask_token" or "dino_head" in key or "ibot_head" in key:
            continue
        key = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)
        out[key] = value
    return out


def convert_drop_heads(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop classification / projection heads a feature backbone does not have."""
    return {k: v for k, v in state.items() if not k.startswith(("head.", "fc_norm."))}
