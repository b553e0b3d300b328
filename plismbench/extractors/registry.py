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
import json
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
from plismbench.extractors.loaders import (
    TimmBackbone,
    load_into,
    load_state_file,
    resolve_layer,
)
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
        from plismbench.extractors.builtins import BUILTINS, REFERENCE_NAMES

        for spec in (*BUILTINS, *BASELINES):
            _add(spec, overwrite=True)
        for alias, target in REFERENCE_NAMES.items():
            _ALIASES.setdefault(fold(alias), fold(target))


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
        return _local_spec(path)
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


# --- Hub ids and local exports --------------------------------------------------------------


def _timm_spec(
    name: str,
    arch: str,
    model_args: dict[str, Any],
    pretrained_cfg: dict[str, Any],
    extra_cfg: dict[str, Any],
    loader: Callable[..., torch.nn.Module],
    **fields: Any,
) -> ExtractorSpec:
    """Describe a timm model from its config, instantiating it on the meta device."""
    import timm

    kwargs = {k: resolve_layer(v) if k.endswith("_layer") else v for k, v in model_args.items()}
    for key in ("mlp_layer", "act_layer"):
        if key in extra_cfg:
            kwargs[key] = resolve_layer(extra_cfg[key])
    try:
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False, **kwargs)
    except Exception as exc:
        raise InputError(
            f"model {name!r}: cannot build timm architecture {arch!r}: {exc}"
        ) from None
    prefix = int(getattr(model, "num_prefix_tokens", 0))
    has_cls = getattr(model, "cls_token", None) is not None
    pooling: Any = extra_cfg.get("pooling") or ("cls" if has_cls else "model")
    width = int(getattr(model, "num_features", 0))
    embed_dim = int(extra_cfg.get("embed_dim") or (2 * width if pooling == "cls+mean" else width))
    input_size = pretrained_cfg.get("input_size") or [3, 224, 224]
    spec = ExtractorSpec(
        name=name,
        loader=loader,
        embed_dim=embed_dim,
        pooling=pooling,
        num_prefix_tokens=int(extra_cfg.get("num_prefix_tokens", prefix)),
        input_size=int(input_size[-1]),
        mean=tuple(pretrained_cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(pretrained_cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        dtype=extra_cfg.get("dtype", "bf16"),
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        extra={
            "arch": arch,
            "arch_kwargs": model_args,
            "timm_kwargs": {k: extra_cfg[k] for k in ("mlp_layer", "act_layer") if k in extra_cfg},
        },
        **fields,
    )
    check_spec(spec)
    return spec


def _hub_spec(hub_id: str) -> ExtractorSpec:
    _ensure_builtins()
    for spec in _SPECS.values():
        if spec.hub_id and spec.hub_id.lower() == hub_id.lower() and spec.pooling != "cls+mean":
            return spec
    from timm.models import load_model_config_from_hf

    try:
        pretrained_cfg, arch, model_args = load_model_config_from_hf(hub_id)
    except Exception as exc:
        raise _hub_error(f"hf-hub:{hub_id}", hub_id, False, exc) from None
    from plismbench.extractors.loaders import timm_loader

    return _timm_spec(
        f"hf-hub:{hub_id}",
        arch,
        dict(model_args or {}),
        dict(pretrained_cfg or {}),
        dict((pretrained_cfg or {}).get("plismbench", {})),
        timm_loader,
        hub_id=hub_id,
    )


def _local_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    import timm

    extra_timm = {k: resolve_layer(v) for k, v in spec.extra.get("timm_kwargs", {}).items()}
    kwargs = {
        **{
            k: resolve_layer(v) if k.endswith("_layer") else v
            for k, v in spec.extra["arch_kwargs"].items()
        },
        **extra_timm,
        **overrides,
    }
    model = timm.create_model(spec.extra["arch"], pretrained=False, **kwargs)
    backbone = TimmBackbone(model, tokens=spec.pooling != "model")
    if pretrained:
        directory = Path(spec.extra["directory"])
        weights = directory / "model.safetensors"
        if not weights.is_file():
            weights = directory / "pytorch_model.bin"
        load_into(spec, backbone, load_state_file(weights), str(weights))
    return backbone


def _local_spec(path: Path) -> ExtractorSpec:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InputError(f"model directory {path} has no config.json (timm export expected)")
    if not (path / "model.safetensors").is_file() and not (path / "pytorch_model.bin").is_file():
        raise InputError(f"model directory {path} has no model.safetensors")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}") from None
    arch = config.get("architecture")
    if not arch:
        raise InputError(f"{config_path} has no 'architecture' (timm config expected)")
    model_args = dict(config.get("model_args", {}))
    if "num_classes" in config:
        model_args.setdefault("num_classes", config["num_classes"])
    pretrained_cfg = dict(config.get("pretrained_cfg", {}))
    for key in ("mean", "std", "input_size"):
        if key in config:
            pretrained_cfg.setdefault(key, config[key])
    extra_cfg = dict(config.get("plismbench", {}))
    spec = _timm_spec(
        config.get("plismbench", {}).get("name") or path.name,
        arch,
        model_args,
        pretrained_cfg,
        extra_cfg,
        _local_loader,
        description=f"local export {path}",
    )
    return replace(spec, extra={**spec.extra, "directory": str(path.resolve())})


# --- loading ----------------------------------------------------------------------------------


def _hub_error(label: str, hub_id: str | None, gated: bool, exc: BaseException) -> InputError:
    from huggingface_hub import get_token

    page = f"https://huggingface.co/{hub_id}" if hub_id else label
    token = get_token()
    kind = type(exc).__name__
    if "Gated" in kind or (gated and token is None):
        return InputError(
            f"model {label!r} is gated: accept its terms at {page} and set HF_TOKEN "
            f"(or run `hf auth login`) ({kind})"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    where = (
        "the Hub is offline (HF_HUB_OFFLINE) and the files are not in the cache"
        if offline
        else str(exc).splitlines()[0]
        if str(exc)
        else kind
    )
    return InputError(f"cannot load model {label!r} from {page}: {where}")


def _is_hub_error(exc: BaseException) -> bool:
    from huggingface_hub import errors as hf_errors

    hub_types: tuple[type[BaseException], ...] = (
        hf_errors.HfHubHTTPError,
        hf_errors.LocalEntryNotFoundError,
        hf_errors.EntryNotFoundError,
        hf_errors.OfflineModeIsEnabled,
    )
    return isinstance(exc, hub_types) or (
        isinstance(exc, OSError) and "huggingface" in str(exc).lower()
    )


def build_backbone(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """Run the spec's loader; a Hub refusal (gated, no token) becomes one clear line."""
    try:
        return spec.loader(spec, pretrained=pretrained, **overrides)
    except InputError:
        raise
    except Exception as exc:
        if pretrained and _is_hub_error(exc):
            raise _hub_error(spec.name, spec.hub_id, spec.gated, exc) from None
        raise


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
    extractor = FeatureExtractor(spec, backbone, precision=precision)
    extractor.to(device)
    with contextlib.suppress(Exception):
        extractor.backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    extractor.eval()
    if self_check:
        extractor.self_check()
    return extractor
