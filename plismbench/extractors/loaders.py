"""Small builders that turn an :class:`ExtractorSpec` into a backbone module.

A spec's ``extra`` carries what a builder needs:

* ``arch``: timm architecture for random builds (tests, ``--weights``);
* ``arch_kwargs``: keyword arguments that reproduce the Hub config's ``model_args``
  on a random build;
* ``timm_kwargs``: keyword arguments the model card passes to ``timm.create_model``
  (layers that JSON cannot hold, such as ``mlp_layer=SwiGLUPacked``);
* ``hf_class`` / ``hf_config``: a ``transformers`` model class and the config used
  for random builds; ``trust_remote_code`` for Hub code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
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


def _resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    for key in ("mlp_layer", "act_layer", "norm_layer"):
        if key in out:
            out[key] = resolve_layer(out[key])
    return out


def timm_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """``timm.create_model("hf-hub:...")`` for pretrained, the declared arch otherwise."""
    import timm

    require(spec)
    timm_kwargs = _resolve_kwargs(spec.extra.get("timm_kwargs", {}))
    tokens = spec.pooling != "model"
    if pretrained:
        if not spec.hub_id:
            raise InputError(f"model {spec.name!r} declares no Hub id to load weights from")
        model = timm.create_model(
            f"hf-hub:{spec.hub_id}", pretrained=True, **{**timm_kwargs, **overrides}
        )
    else:
        arch = spec.extra.get("arch")
        if not arch:
            raise InputError(
                f"model {spec.name!r} declares no timm architecture for a random build"
            )
        kwargs = {**_resolve_kwargs(spec.extra.get("arch_kwargs", {})), **timm_kwargs, **overrides}
        model = timm.create_model(arch, pretrained=False, **kwargs)
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


def load_into(
    spec: ExtractorSpec, backbone: torch.nn.Module, state: dict[str, torch.Tensor], source: str
) -> None:
    """Load ``state`` into the backbone's inner model strictly; one clear line on mismatch."""
    target = getattr(backbone, "model", backbone)
    state = strip_prefixes(state, ("module.", "_orig_mod."))
    if spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
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
        file_name = spec.extra.get("file_name")
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


# --- transformers -------------------------------------------------------------------------------


class HFBackbone(torch.nn.Module):
    """A ``transformers`` vision model: ``last_hidden_state`` tokens or image embeddings."""

    def __init__(self, model: torch.nn.Module, output: str):
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output == "image_features":
            get = getattr(self.model, "get_image_features", None)
            if get is not None:
                out = get(pixel_values=x)
                return out if isinstance(out, torch.Tensor) else out.pooler_output
            return self.model(pixel_values=x).image_embeds
        if self.output == "call":
            return self.model(x)
        return self.model(pixel_values=x).last_hidden_state


def transformers_loader(
    spec: ExtractorSpec, *, pretrained: bool, **overrides: Any
) -> torch.nn.Module:
    """``transformers`` ``from_pretrained`` on the Hub id, or a random build from a config."""
    require(spec)
    transformers = importlib.import_module("transformers")
    output = spec.extra.get("hf_output", "tokens")
    cls = getattr(transformers, spec.extra.get("hf_class", "AutoModel"))
    trust = bool(spec.extra.get("trust_remote_code", False))
    if pretrained:
        model = cls.from_pretrained(spec.hub_id, trust_remote_code=trust)
        post: Callable[[Any], torch.nn.Module] | None = spec.extra.get("hf_post")
        if post is not None:
            model = post(model)
    else:
        config_name, config_kwargs = spec.extra.get("hf_config", (None, {}))
        if config_name is None:
            raise InputError(
                f"model {spec.name!r} uses Hub code and has no random build; load it pretrained"
            )
        depth_key = spec.extra.get("hf_depth_key", "num_hidden_layers")
        kwargs = dict(config_kwargs)
        if "depth" in overrides:
            kwargs[depth_key] = overrides.pop("depth")
        kwargs.update(overrides)
        config = getattr(transformers, config_name)(**kwargs)
        rcls = getattr(transformers, spec.extra.get("hf_random_class", cls.__name__))
        model = rcls.from_config(config) if rcls.__name__ == "AutoModel" else rcls(config)
    return HFBackbone(model, output)


# --- CONCH (package not on PyPI) ---------------------------------------------------------------


class ConchBackbone(torch.nn.Module):
    """CONCH's image encoder, before the contrastive projection."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, proj_contrast=False, normalize=False)  # type: ignore[operator]


def conch_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """CONCH through its own package (``conch.open_clip_custom``)."""
    require(spec)
    open_clip_custom = importlib.import_module("conch.open_clip_custom")
    checkpoint = f"hf_hub:{spec.hub_id}" if pretrained else None
    model, _ = open_clip_custom.create_model_from_pretrained(
        "conch_ViT-B-16", checkpoint_path=checkpoint, force_image_size=spec.input_size
    )
    return ConchBackbone(model)
