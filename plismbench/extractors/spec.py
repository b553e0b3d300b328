"""What an extractor is: declarative data plus a small loader (timm ``pretrained_cfg`` style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from plismbench.extractors.archs import HFArch, TimmArch

Pooling = Literal["cls", "cls+mean", "mean", "model"]
Precision = Literal["bf16", "fp16", "fp32"]

POOLINGS: tuple[str, ...] = ("cls", "cls+mean", "mean", "model")
PRECISIONS: tuple[str, ...] = ("bf16", "fp16", "fp32")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BIOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
BIOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)


class Loader(Protocol):
    """Builds the backbone of an extractor.

    ``pretrained=False`` gives random weights (tests, or before ``--weights``);
    ``overrides`` are architecture keyword overrides such as ``depth=2``. The
    backbone maps normalised float ``(B, 3, H, W)`` to tokens ``(B, N, D)`` when
    the spec pools (``cls``, ``cls+mean``, ``mean``) or to ``(B, embed_dim)`` when
    the pooling is ``model``.
    """

    def __call__(
        self, spec: ExtractorSpec, *, pretrained: bool, **overrides: Any
    ) -> torch.nn.Module: ...


@dataclass(frozen=True)
class ExtractorSpec:
    """One registered extractor: data that the engine and the reports read."""

    #: Canonical name, also the output folder name under the export dir.
    name: str
    #: Builder of the backbone, see :class:`Loader`.
    loader: Callable[..., torch.nn.Module]
    #: Dimension of the pooled feature (twice the width for ``cls+mean``).
    embed_dim: int
    #: How tokens become one vector per tile.
    pooling: Pooling = "cls"
    #: Why ``pooling`` is the default, in the card's or the authors' words (``models`` shows it).
    pooling_reason: str = ""
    #: CLS plus register tokens; the patch-token mean starts after them.
    num_prefix_tokens: int = 1
    #: Square input side the model sees.
    input_size: int = 224
    #: If set, tiles are resized to this side, then centre-cropped to ``input_size``.
    resize: int | None = None
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    #: False hands the backbone raw uint8 ``(B, 3, H, W)`` tiles (histogram baselines).
    normalise: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: Autocast dtype on a GPU (CPU runs use fp32 unless asked otherwise). Built-ins record
    #: the reference benchmark's: it autocasts in fp16 (``torch.autocast("cuda")``).
    dtype: Precision = "bf16"
    #: Parameter count in millions (approximate, from the model card).
    params_m: float | None = None
    hub_id: str | None = None
    #: Hub revision (branch, tag or commit) to load; ``None`` is ``main``. ``extract
    #: --revision`` sets it; the resolved commit is recorded in ``meta.json``.
    revision: str | None = None
    url: str | None = None
    gated: bool = False
    licence: str = "see model card"
    #: Machine-readable restrictions of the licence: ``non-commercial``, ``no-derivatives``,
    #: ``no-replicating-training`` (no training of models that replicate it: distillation),
    #: ``see-licence``. ``distill --teacher`` refuses ``no-replicating-training`` teachers
    #: unless the user accepts the licence.
    licence_restrictions: tuple[str, ...] = ()
    citation: str = ""
    aliases: tuple[str, ...] = ()
    #: Import names of optional packages the loader needs, with the install hint.
    requires: tuple[tuple[str, str], ...] = ()
    #: Maps a raw checkpoint state dict onto the architecture (``--weights``).
    convert_state_dict: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    description: str = ""
    #: timm architecture (random builds, ``--weights``, and the card's Hub arguments).
    timm: TimmArch | None = None
    #: ``transformers`` classes and random-build config.
    hf: HFArch | None = None
    #: Cache file name of weights fetched from ``url``.
    weights_file: str | None = None
    #: Folder of a local timm export (``config.json`` + ``model.safetensors``).
    local_dir: str | None = None

    @property
    def page(self) -> str | None:
        """The model page a user visits to accept terms or read the card."""
        if self.hub_id:
            return f"https://huggingface.co/{self.hub_id}"
        return self.url

    @property
    def folder(self) -> str:
        """Filesystem-safe name used for ``export_dir/<folder>/``."""
        return self.name.replace("hf-hub:", "").replace("/", "--").replace(":", "-")

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (what ``plismbench models --json`` prints)."""
        data = asdict(self)
        for key in ("loader", "convert_state_dict", "timm", "hf", "local_dir", "weights_file"):
            data.pop(key, None)
        if self.timm is not None:
            data["architecture"] = self.timm.model
        data["aliases"] = list(self.aliases)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["requires"] = [pkg for pkg, _ in self.requires]
        data["licence_restrictions"] = list(self.licence_restrictions)
        data["page"] = self.page
        return data


def check_spec(spec: ExtractorSpec) -> None:
    """Validate the fields a loader cannot check itself."""
    from plismbench.errors import InputError

    if not spec.name:
        raise InputError("extractor spec has an empty name")
    if spec.pooling not in POOLINGS:
        raise InputError(
            f"extractor {spec.name!r}: pooling {spec.pooling!r} is not one of {', '.join(POOLINGS)}"
        )
    if spec.dtype not in PRECISIONS:
        raise InputError(
            f"extractor {spec.name!r}: dtype {spec.dtype!r} is not one of {', '.join(PRECISIONS)}"
        )
    if spec.embed_dim < 0 or spec.num_prefix_tokens < 0:
        raise InputError(f"extractor {spec.name!r}: embed_dim and num_prefix_tokens must be >= 0")
    if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
        raise InputError(f"extractor {spec.name!r}: mean and std need three values, std > 0")
    if not callable(spec.loader):
        raise InputError(f"extractor {spec.name!r}: loader is not callable")


def as_path(value: str | Path | None) -> Path | None:
    """``None`` stays ``None``; anything else becomes a :class:`Path`."""
    return None if value is None else Path(value)
