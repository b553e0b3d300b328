"""The extractor registry: built-ins, baselines, Python plugins and entry points.

Names match case-insensitively with ``-``, ``_``, ``.`` and spaces folded away, so
``h0-mini``, ``H0_mini`` and ``h0mini`` are one model. :func:`get_extractor` also
accepts ``hf-hub:org/name`` (a timm model on the Hugging Face Hub) and a local
directory exported by ``plismbench distill`` (timm ``config.json`` +
``model.safetensors``).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, overload

import torch

from plismbench.errors import InputError
from plismbench.extractors.loaders import load_into, load_state_file
from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.spec import ExtractorSpec, check_spec

ENTRY_POINT_GROUP = "plismbench.extractors"

_SPECS: dict[str, ExtractorSpec] = {}
_ALIASES: dict[str, str] = {}
_LOCK = threading.RLock()
_STATE = {"builtins": False, "entry_points": False}


def fold(name: str) -> str:
    """Case-insensitive key with ``-``, ``_``, ``.`` and spaces removed."""
    return "".join(ch for ch in name.lower() if ch not in "-_. ")


def _add(spec: ExtractorSpec, overwrite: bool) -> ExtractorSpec:
    check_spec(spec)
    key = fold(spec.name)
    with _LOCK:
        existing = _SPECS.get(key) or _SPECS.get(_ALIASES.get(key, ""))
        if existing is not None and not overwrite and existing is not spec:
            if existing == spec:
                return existing
            raise InputError(
                f"an extractor named {spec.name!r} is already registered "
                f"(as {existing.name!r}); pass overwrite=True to replace it"
            )
        if existing is not None:
            _remove(existing)
        _SPECS[key] = spec
        for alias in spec.aliases:
            akey = fold(alias)
            if akey != key and akey not in _SPECS:
                _ALIASES[akey] = key
    return spec


def _remove(spec: ExtractorSpec) -> None:
    key = fold(spec.name)
    _SPECS.pop(key, None)
    for alias, target in list(_ALIASES.items()):
        if target == key:
            del _ALIASES[alias]


def unregister_extractor(name: str) -> None:
    """Remove a registered extractor (mainly for tests)."""
    spec = _lookup(name)
    if spec is not None:
        with _LOCK:
            _remove(spec)


@overload
def register_extractor(spec: ExtractorSpec, /, *, overwrite: bool = ...) -> ExtractorSpec: ...


@overload
def register_extractor(spec: None = ..., /, *, overwrite: bool = ..., **fields: Any) -> Any: ...


def register_extractor(
    spec: ExtractorSpec | Callable[..., torch.nn.Module] | None = None,
    /,
    *,
    overwrite: bool = False,
    **fields: Any,
) -> Any:
    """Register an extractor; a plain call or a decorator on a loader.

    Examples::

        register_extractor(ExtractorSpec(name="mine", loader=build, embed_dim=384))
        register_extractor(name="mine", loader=build, embed_dim=384, pooling="cls")

        @register_extractor(name="mine", embed_dim=384, pooling="model")
        def build(spec, *, pretrained, **overrides): ...

    The loader receives the spec, ``pretrained`` and architecture overrides and
    returns a module mapping normalised ``(B, 3, H, W)`` floats to tokens
    ``(B, N, D)`` (pooling ``cls``, ``cls+mean``, ``mean``) or ``(B, embed_dim)``
    (pooling ``model``).
    """
    _ensure_builtins()
    if isinstance(spec, ExtractorSpec):
        if fields:
            spec = replace(spec, **fields)
        return _add(spec, overwrite)
    if spec is not None:  # used bare as ``@register_extractor`` on a loader
        raise InputError(
            "register_extractor needs at least name= and embed_dim= when used as a decorator"
        )
    if "loader" in fields:
        return _add(_spec_from_fields(fields), overwrite)

    def decorator(loader: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        _add(_spec_from_fields({**fields, "loader": loader}), overwrite)
        return loader

    return decorator


def _spec_from_fields(fields: dict[str, Any]) -> ExtractorSpec:
    missing = [key for key in ("name", "embed_dim") if key not in fields]
    if missing:
        raise InputError(f"register_extractor: missing {', '.join(missing)}")
    if "aliases" in fields:
        fields["aliases"] = tuple(fields["aliases"])
    try:
        return ExtractorSpec(**fields)
    except TypeError as exc:
        raise InputError(f"register_extractor({fields.get('name')!r}): {exc}") from None


def _ensure_builtins() -> None:
    with _LOCK:
        if _STATE["builtins"]:
            return
        _STATE["builtins"] = True
        from plismbench.extractors.baselines import BASELINES
        from plismbench.extractors.builtins import BUILTINS
        from plismbench.extractors.recent import RECENT

        for spec in (*BUILTINS, *RECENT, *BASELINES):
            _add(spec, overwrite=True)


def load_entry_points(force: bool = False) -> None:
    """Import the ``plismbench.extractors`` entry points of installed packages (once).

    An entry point may name an :class:`ExtractorSpec`, a list of them, a callable
    returning either, or a module whose import registers its extractors.
    """
    _ensure_builtins()
    with _LOCK:
        if _STATE["entry_points"] and not force:
            return
        _STATE["entry_points"] = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, ExtractorSpec) and not isinstance(obj, type):
                obj = obj()
            items = obj if isinstance(obj, (list, tuple)) else [obj]
            for item in items:
                if isinstance(item, ExtractorSpec):
                    _add(item, overwrite=False)
        except Exception as exc:
            warnings.warn(
                f"plismbench: extractor plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                stacklevel=2,
            )


def _lookup(name: str) -> ExtractorSpec | None:
    key = fold(name)
    with _LOCK:
        if key in _SPECS:
            return _SPECS[key]
        if key in _ALIASES:
            return _SPECS.get(_ALIASES[key])
    return None


def list_extractors() -> list[ExtractorSpec]:
    """Every registered extractor (built-ins, baselines, plugins), sorted by name."""
    load_entry_points()
    with _LOCK:
        return sorted(_SPECS.values(), key=lambda s: s.name)


def get_extractor(name: str | os.PathLike[str] | ExtractorSpec) -> ExtractorSpec:
    """The spec for a registry name or alias, an ``hf-hub:`` id or a local export dir."""
    if isinstance(name, ExtractorSpec):
        return name
    load_entry_points()
    text = os.fspath(name)
    if text.startswith(("hf-hub:", "hf_hub:")):
        return _hub_spec(text.split(":", 1)[1])
    spec = _lookup(text)
    if spec is not None:
        return spec
    path = Path(text).expanduser()
    if path.is_dir():
        from plismbench.extractors.external import local_spec

        return local_spec(path)
    if ("/" in text or os.sep in text) and not path.exists():
        raise InputError(f"model directory {path} does not exist")
    canonical: dict[str, str] = {}
    for known in _SPECS.values():
        for label in (known.name, *known.aliases):
            canonical.setdefault(fold(label), known.name)
    for alias, target in _ALIASES.items():
        if target in _SPECS:
            canonical.setdefault(alias, _SPECS[target].name)
    close = difflib.get_close_matches(fold(text), list(canonical), n=8, cutoff=0.5)
    names = list(dict.fromkeys(canonical[c] for c in close))[:4]
    hint = f"; did you mean {', '.join(repr(n) for n in names)}?" if names else ""
    raise InputError(
        f"unknown model {text!r}{hint} (`plismbench models` lists them; "
        "`hf-hub:org/name` and exported folders also work)"
    )


def _hub_spec(hub_id: str) -> ExtractorSpec:
    """A registered model with this Hub id, else one described from its timm config."""
    _ensure_builtins()
    for spec in _SPECS.values():
        if spec.hub_id and spec.hub_id.lower() == hub_id.lower() and spec.pooling != "cls+mean":
            return spec
    from plismbench.extractors.access import hub_error, model_access
    from plismbench.extractors.external import hub_spec

    label = f"hf-hub:{hub_id}"
    with model_access(label, hub_id, gated=False):
        return hub_spec(hub_id, lambda exc: hub_error(label, hub_id, False, exc))


# --- loading ----------------------------------------------------------------------------------


def build_backbone(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """Run the spec's loader; Hub failures (unreachable, gated, offline) become one line."""
    if not (pretrained and spec.hub_id):
        return spec.loader(spec, pretrained=pretrained, **overrides)
    from plismbench.extractors.access import model_access

    with model_access(spec.name, spec.hub_id, spec.gated):
        return spec.loader(spec, pretrained=pretrained, **overrides)


def _check_input_size(spec: ExtractorSpec, backbone: torch.nn.Module) -> None:
    """A ViT with fixed position embeddings only takes its own size: say so, not a bare assert."""
    inner = getattr(backbone, "model", backbone)
    if spec.input_size <= 0 or not spec.normalise:
        return
    embed = getattr(inner, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    strict = bool(getattr(embed, "strict_img_size", not getattr(inner, "dynamic_img_size", False)))
    config = getattr(inner, "config", None)
    config = getattr(config, "vision_config", config)
    if size is None and type(inner).__name__.startswith(("ViT", "CLIP")):
        # transformers ViT and CLIP refuse other sizes (Dinov2 interpolates)
        hf_size = getattr(config, "image_size", None)
        size, strict = (None, False) if hf_size is None else ((hf_size, hf_size), True)
    if size is not None and strict and tuple(size) != (spec.input_size, spec.input_size):
        raise InputError(
            f"model {spec.name!r}: the architecture takes {size[0]}x{size[1]} px inputs only "
            f"(fixed position embeddings), the spec asks for {spec.input_size} px; set "
            f"input_size={size[0]} or build it for that size (e.g. dynamic_img_size=True)"
        )


def load_extractor(
    model: str | os.PathLike[str] | ExtractorSpec,
    *,
    device: str | torch.device = "cpu",
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = True,
    precision: str = "fp32",
    self_check: bool = True,
    **overrides: Any,
) -> FeatureExtractor:
    """Build a ready :class:`FeatureExtractor` in eval mode on ``device``.

    ``weights`` loads a local state dict into the registry architecture (air-gapped
    sites); ``pretrained=False`` keeps random weights; ``overrides`` (e.g. ``depth=2``)
    change the architecture of random or ``weights`` builds.
    """
    spec = get_extractor(model)
    use_hub = pretrained and weights is None
    if overrides and use_hub:
        raise InputError(
            f"model {spec.name!r}: architecture overrides {sorted(overrides)} need "
            "pretrained=False or weights="
        )
    backbone = build_backbone(spec, pretrained=use_hub, **overrides)
    if weights is not None:
        path = Path(weights)
        load_into(spec, backbone, load_state_file(path), str(path))
    backbone.eval().requires_grad_(False)
    inner_prefix = getattr(getattr(backbone, "model", None), "num_prefix_tokens", None)
    if (
        isinstance(inner_prefix, int)
        and spec.pooling in ("cls+mean", "mean")
        and inner_prefix != spec.num_prefix_tokens
    ):
        raise InputError(
            f"model {spec.name!r}: the architecture has {inner_prefix} prefix tokens, the "
            f"registry declares {spec.num_prefix_tokens}; the patch mean would be wrong"
        )
    _check_input_size(spec, backbone)
    extractor = FeatureExtractor(spec, backbone, precision=precision)
    extractor.to(device)
    with contextlib.suppress(Exception):
        extractor.backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    extractor.eval()
    if self_check:
        extractor.self_check()
    return extractor
