"""Typed architecture declarations: one place says how a registry model is built.

A `TimmArch` or `HFArch` is declared once per model and used for every build:
random weights, ``--weights`` and (for timm) the Hub build, which receives the fields the
model card passes to ``timm.create_model`` (``card``). Fields are typed, so a typo is a
``TypeError`` at import time instead of a silently different model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch

HFOutput = Literal["tokens", "image_features", "call"]


@dataclass(frozen=True)
class TimmArch:
    """A timm architecture name and the keyword arguments that differ from its defaults."""

    #: timm architecture, e.g. ``vit_base_patch14_reg4_dinov2``.
    model: str
    img_size: int | None = 224
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float | None = None
    #: SwiGLU MLP: timm ``mlp_layer=SwiGLUPacked, act_layer=SiLU`` (hidden = mlp_ratio * dim / 2).
    swiglu: bool = False
    init_values: float | None = None
    reg_tokens: int | None = None
    no_embed_class: bool | None = None
    qkv_bias: bool | None = None
    dynamic_img_size: bool | None = None
    global_pool: str | None = None
    #: timm layer names (``"SwiGLUPacked"``, ``"silu"``), as a ``config.json`` holds them.
    mlp_layer: str | None = None
    act_layer: str | None = None
    #: Further ``create_model`` arguments read from a ``config.json`` (exports, ``hf-hub:`` ids).
    config_kwargs: tuple[tuple[str, Any], ...] = ()
    #: Fields also passed with the Hub id (what the model card passes to ``create_model``);
    #: the others come from the Hub ``config.json``. ``"swiglu"`` passes the two layers.
    card: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = {f.name for f in fields(self)} - {"model", "card", "config_kwargs"}
        unknown = [c for c in self.card if c not in names]
        if unknown:
            raise TypeError(f"TimmArch({self.model!r}): card names unknown fields {unknown}")

    def _value(self, name: str) -> dict[str, Any]:
        if name == "swiglu":
            if not self.swiglu:
                return {}
            import timm.layers

            return {"mlp_layer": timm.layers.SwiGLUPacked, "act_layer": torch.nn.SiLU}
        value = getattr(self, name)
        if name.endswith("_layer") and value is not None:
            from plismbench.extractors.loaders import resolve_layer

            value = resolve_layer(value)
        return {} if value is None else {name: value}

    def kwargs(self) -> dict[str, Any]:
        """``timm.create_model`` keyword arguments for a random build (no classifier head)."""
        from plismbench.extractors.loaders import resolve_layer

        out: dict[str, Any] = {"num_classes": 0}
        for key, value in self.config_kwargs:
            out[key] = resolve_layer(value) if key.endswith("_layer") else value
        for f in fields(self):
            if f.name not in ("model", "card", "config_kwargs"):
                out.update(self._value(f.name))
        return out

    def card_kwargs(self) -> dict[str, Any]:
        """Keyword arguments passed with ``hf-hub:<id>`` (the model card's)."""
        out: dict[str, Any] = {"num_classes": 0}
        for name in self.card:
            out.update(self._value(name))
        return out


@dataclass(frozen=True)
class HFArch:
    """A ``transformers`` model: classes, output, and the config of a random build."""

    #: Class used with ``from_pretrained`` (``AutoModel`` for Hub code).
    model_class: str = "AutoModel"
    #: Config class of a random build; ``None``: Hub code, no offline random build.
    config_class: str | None = None
    #: Class of the random build when it differs from ``model_class``.
    random_class: str | None = None
    #: ``tokens``: ``last_hidden_state``; ``image_features``: CLIP projection; ``call``: model(x).
    output: HFOutput = "tokens"
    trust_remote_code: bool = False
    #: Turns the ``from_pretrained`` model into the image encoder (e.g. TITAN -> CONCH v1.5).
    post: Callable[[Any], torch.nn.Module] | None = None
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    image_size: int | None = None
    patch_size: int | None = None
    layerscale_value: float | None = None
    use_swiglu_ffn: bool | None = None
    projection_dim: int | None = None

    _CONFIG_FIELDS = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "image_size",
        "patch_size",
        "layerscale_value",
        "use_swiglu_ffn",
        "projection_dim",
    )

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``config_class`` (the declared, non-default ones)."""
        values = {name: getattr(self, name) for name in self._CONFIG_FIELDS}
        return {k: v for k, v in values.items() if v is not None}
