"""Builders for models outside timm: ``transformers`` models and CONCH (its own package).

Random builds (tests, before ``--weights``) come from the spec's
:class:`~plismbench.extractors.archs.HFArch` config, or CONCH's packaged config.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

from plismbench.errors import InputError
from plismbench.extractors.archs import HFArch
from plismbench.extractors.loaders import require
from plismbench.extractors.spec import ExtractorSpec


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
    arch = spec.hf if spec.hf is not None else HFArch()
    cls = getattr(transformers, arch.model_class)
    if pretrained:
        model = cls.from_pretrained(
            spec.hub_id, trust_remote_code=arch.trust_remote_code, revision=spec.revision
        )
        if arch.post is not None:
            model = arch.post(model)
    else:
        if arch.config_class is None:
            raise InputError(
                f"model {spec.name!r} uses Hub code and has no random build; load it pretrained"
            )
        kwargs = arch.config_kwargs()
        if "depth" in overrides:
            kwargs["num_hidden_layers"] = overrides.pop("depth")
        kwargs.update(overrides)
        config = getattr(transformers, arch.config_class)(**kwargs)
        rcls = getattr(transformers, arch.random_class or arch.model_class)
        model = rcls.from_config(config) if rcls.__name__ == "AutoModel" else rcls(config)
    return HFBackbone(model, arch.output)


# --- CONCH (package not on PyPI) ---------------------------------------------------------------


class ConchBackbone(torch.nn.Module):
    """CONCH's image encoder, before the contrastive projection."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, proj_contrast=False, normalize=False)  # type: ignore[operator]


def conch_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """CONCH through its own package (``conch.open_clip_custom``).

    ``create_model_from_pretrained`` needs a checkpoint, so random builds (tests, before
    ``--weights``) build the ``CoCa`` model from the package's config instead.
    """
    require(spec)
    open_clip_custom = importlib.import_module("conch.open_clip_custom")
    config_name = "conch_ViT-B-16"
    if pretrained:
        model, _ = open_clip_custom.create_model_from_pretrained(
            config_name, checkpoint_path=f"hf_hub:{spec.hub_id}", force_image_size=spec.input_size
        )
        return ConchBackbone(model)
    factory = importlib.import_module("conch.open_clip_custom.factory")
    path = Path(factory.CFG_DIR) / f"{config_name}.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("custom_text", None)
    config["vision_cfg"]["image_size"] = spec.input_size
    if "depth" in overrides:
        config["vision_cfg"]["layers"] = overrides.pop("depth")
    config.update(overrides)
    return ConchBackbone(open_clip_custom.CoCa(**config))
