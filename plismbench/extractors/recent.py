"""Models the field compares since the reference leaderboard's 2025 table, declared as data.

Facts (architecture, pooling, input size, mean/std, precision) come from each model's card and
its authors' loading code, as read by other tools for the same model (TRIDENT, slide2vec);
``description`` says where each default comes from. Models defined by Hub remote code
(``trust_remote_code``) have no offline random build, as for Hibou; their loader needs
``transformers`` and says so in one line when it is missing.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import torch

from plismbench.errors import InputError
from plismbench.extractors.archs import HFArch, TimmArch
from plismbench.extractors.loaders import (
    TimmBackbone,
    load_into,
    load_state_file,
    require,
    timm_loader,
)
from plismbench.extractors.loaders_hf import transformers_loader
from plismbench.extractors.spec import (
    BIOPTIMUS_MEAN,
    BIOPTIMUS_STD,
    HALF_MEAN,
    HALF_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExtractorSpec,
)

_TRANSFORMERS = (("transformers", "pip install 'transformers>=4.44'"),)
_MUSK = (
    ("musk", "pip install fairscale git+https://github.com/lilab-stanford/MUSK (not on PyPI)"),
    ("fairscale", "pip install fairscale"),
)

# --- loaders ----------------------------------------------------------------------------------


def _hub_file(spec: ExtractorSpec) -> dict[str, torch.Tensor]:
    """The spec's ``weights_file`` from its Hub repo (cached), as a state dict."""
    from pathlib import Path

    from huggingface_hub import hf_hub_download

    if not spec.hub_id or not spec.weights_file:
        raise InputError(f"model {spec.name!r} declares no Hub file to load weights from")
    path = hf_hub_download(spec.hub_id, spec.weights_file, revision=spec.revision)
    return load_state_file(Path(path))


def hub_file_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """The declared timm architecture, with a raw checkpoint file from the Hub repo."""
    backbone = timm_loader(spec, pretrained=False, **overrides)
    if pretrained:
        load_into(spec, backbone, _hub_file(spec), f"{spec.hub_id}/{spec.weights_file}")
    return backbone


class ChannelStack(torch.nn.Module):
    """A one-channel ViT run once per RGB channel; the three token sets side by side.

    ``(B, 3, H, W)`` becomes ``(3B, 1, H, W)``; the tokens ``(3B, N, D)`` come back as
    ``(B, N, 3D)`` in R, G, B order, so CLS pooling gives the three CLS tokens concatenated
    (GenBio-PathFM's feature) and mean pooling the three patch means.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.model.forward_features(x.reshape(b * c, 1, h, w))  # type: ignore[operator]
        n, d = tokens.shape[1], tokens.shape[2]
        return tokens.view(b, c, n, d).permute(0, 2, 1, 3).reshape(b, n, c * d)


@functools.cache
def _genbio_target() -> torch.nn.Module:
    """GenBio-PathFM's architecture on the meta device (for timm's key conversion)."""
    import timm

    with torch.device("meta"):
        return timm.create_model(GENBIO_ARCH.model, pretrained=False, **GENBIO_ARCH.kwargs())


def convert_dinov3(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DINOv3-layout checkpoint (``storage_tokens``, ``w1/w2/w3``, ``ls1.gamma``) to timm Eva."""
    from timm.models.eva import checkpoint_filter_fn

    if "storage_tokens" not in state:
        return state  # already timm keys
    return checkpoint_filter_fn(state, _genbio_target())


def genbio_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """GenBio-PathFM: the timm DINOv3 (Eva, RoPE) architecture with one input channel."""
    import timm

    arch = spec.timm
    if arch is None:
        raise InputError(f"model {spec.name!r} declares no timm architecture")
    model = timm.create_model(arch.model, pretrained=False, **{**arch.kwargs(), **overrides})
    backbone = ChannelStack(model)
    if pretrained:
        load_into(spec, backbone, _hub_file(spec), f"{spec.hub_id}/{spec.weights_file}")
    return backbone


class RefineHead(torch.nn.Module):
    """Mettle's CLS refinement: a content-conditioned mixture of low-rank updates plus a shift.

    ``e + sum_k mix_k(e) * Q_k (P_k^T e) + shift(e)`` with ``P_k, Q_k`` of shape (dim, rank).
    """

    def __init__(self, dim: int, atoms: int = 16, rank: int = 8, hidden: int = 256):
        super().__init__()
        self.P = torch.nn.Parameter(torch.zeros(atoms, dim, rank))
        self.Q = torch.nn.Parameter(torch.zeros(atoms, dim, rank))
        self.mix = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, atoms)
        )
        self.shift = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim)
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        low = torch.einsum("bd,kdr->bkr", e, self.P)
        update = torch.einsum("bkr,kdr->bkd", low, self.Q)
        return e + (self.mix(e).unsqueeze(-1) * update).sum(1) + self.shift(e)


class HeadedTokens(TimmBackbone):
    """Tokens whose CLS went through a head (fp32, outside autocast); patch tokens untouched."""

    def __init__(self, model: torch.nn.Module, head: torch.nn.Module):
        super().__init__(model, tokens=True)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(x)  # type: ignore[operator]
        with torch.autocast(device_type=x.device.type, enabled=False):
            cls = self.head(tokens[:, 0].float())
        return torch.cat([cls[:, None].to(tokens.dtype), tokens[:, 1:]], dim=1)


def convert_mettle(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mettle's ``model.safetensors``: ``backbone.*`` to the timm model (``--weights``)."""
    return {k.removeprefix("backbone."): v for k, v in state.items() if not k.startswith("head.")}


def mettle_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """H-optimus-0's ViT-g/14 reg4 backbone plus Mettle's refine head on the CLS token."""
    inner: Any = timm_loader(spec, pretrained=False, **overrides).model
    backbone = HeadedTokens(inner, RefineHead(int(inner.embed_dim)))
    if pretrained:
        state = _hub_file(spec)
        source = f"{spec.hub_id}/{spec.weights_file}"
        load_into(spec, backbone, state, source)  # the backbone keys
        head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        backbone.head.load_state_dict(head, strict=True)
    return backbone


class MethodBackbone(torch.nn.Module):
    """A Hub model whose image feature is one method: ``encode``, ``encode_image`` ..."""

    def __init__(self, model: torch.nn.Module, method: str, key: str | None = None):
        super().__init__()
        self.model = model
        self.method = method
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self.model, self.method)(x)
        return out[self.key] if self.key is not None else out


def _encode(model: Any) -> torch.nn.Module:
    return MethodBackbone(model, "encode")


def _encode_image(model: Any) -> torch.nn.Module:
    return MethodBackbone(model, "encode_image")


def _rudolf_tokens(model: Any) -> torch.nn.Module:
    """RudolfV-2's published token path: ``model.model.encode(x)["last_hidden_state"]``."""
    return MethodBackbone(model.model, "encode", "last_hidden_state")


class MuskBackbone(torch.nn.Module):
    """MUSK's image branch: the global feature without the contrastive head or normalisation."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(image=x, with_head=False, out_norm=False, ms_aug=False, return_global=True)
        return out[0]


def musk_loader(spec: ExtractorSpec, *, pretrained: bool, **overrides: Any) -> torch.nn.Module:
    """MUSK through its package (it registers ``musk_large_patch16_384`` with timm)."""
    require(spec)
    import importlib

    import timm

    importlib.import_module("musk.modeling")
    model = timm.create_model("musk_large_patch16_384", **overrides)
    if pretrained:
        utils = importlib.import_module("musk.utils")
        utils.load_model_and_may_interpolate(f"hf_hub:{spec.hub_id}", model, "model|module", "")
    return MuskBackbone(model)


# --- architectures ----------------------------------------------------------------------------

#: GenBio-PathFM: ViT-g/16, 1536 wide, 40 blocks, 24 heads, SwiGLU hidden 4096 (ratio 8/3,
#: aligned to 64), no QKV bias, LayerScale, 4 storage tokens, RoPE (base 100) and no absolute
#: position embedding, LayerNorm eps 1e-6, ONE input channel (authors' ``VisionTransformer``).
GENBIO_ARCH = TimmArch(
    "vit_huge_plus_patch16_dinov3",
    embed_dim=1536,
    depth=40,
    num_heads=24,
    mlp_ratio=8 / 3,
    config_kwargs=(
        ("in_chans", 1),
        ("swiglu_align_to", 64),
        ("norm_layer", functools.partial(torch.nn.LayerNorm, eps=1e-6)),
    ),
)
#: DINOv2 ViT-g/14 + 4 registers (OpenMidnight: ``dinov2_vitg14_reg``; Mettle: H-optimus-0's).
VITG14_REG4 = TimmArch("vit_giant_patch14_reg4_dinov2", init_values=1e-5, dynamic_img_size=False)
#: ViT-L/16 as UNI builds it (mSTAR, Digepath): LayerScale 1e-5, dynamic image size.
VITL16_UNI = TimmArch(
    "vit_large_patch16_224",
    init_values=1e-5,
    dynamic_img_size=True,
    card=("init_values", "dynamic_img_size"),
)

_RUDOLF_MEAN = (0.7072, 0.5787, 0.7036)
_RUDOLF_STD = (0.2119, 0.2301, 0.1775)
_GENBIO_MEAN = (0.697, 0.575, 0.728)
_GENBIO_STD = (0.188, 0.240, 0.187)
_RUDOLF_LICENCE = "Aignostics RudolfV-2 licence (non-commercial; no training of replicating models)"


def convert_dinov2_hub(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``facebookresearch/dinov2`` hub checkpoint (``w12/w3``, ``register_tokens``) to timm."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "mask_token":
            continue
        key = key.replace("register_tokens", "reg_token")
        key = key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2.")
        out[key] = value
    return out


_BASE = ExtractorSpec(name="base", loader=timm_loader, embed_dim=0, dtype="fp16")
_HUB_CODE = replace(_BASE, loader=transformers_loader, requires=_TRANSFORMERS)
_RUDOLF = replace(
    _HUB_CODE,
    pooling="cls+mean",
    num_prefix_tokens=9,
    mean=_RUDOLF_MEAN,
    std=_RUDOLF_STD,
    dtype="fp32",
    gated=True,
    licence=_RUDOLF_LICENCE,
    licence_restrictions=("no-replicating-training", "non-commercial"),
    citation="Aignostics. RudolfV-2 (2026). huggingface.co/collections/Aignostics",
    hf=HFArch(trust_remote_code=True, output="call", post=_rudolf_tokens),
)
_WAIV = replace(
    _HUB_CODE,
    pooling="model",
    num_prefix_tokens=1,
    dtype="fp32",
    gated=True,
    licence="Waiv non-commercial academic licence",
    licence_restrictions=("non-commercial",),
    citation="Waiv. Acquisition-robust pathology foundation models. arXiv:2607.22861 (2026)",
    hf=HFArch(trust_remote_code=True, output="call", post=_encode),
)


def _rudolf(name: str, hub: str, width: int, arch: str, params: float | None) -> tuple[
    ExtractorSpec, ExtractorSpec
]:  # fmt: skip
    default = replace(
        _RUDOLF,
        name=name,
        embed_dim=2 * width,
        params_m=params,
        hub_id=hub,
        description=(
            f"{arch}/8 + 8 registers (Aignostics, Hub code); CLS + mean of patch tokens, the "
            "card's representation (registers excluded); fp32 as the authors run it."
        ),
        pooling_reason="card: CLS concatenated with the mean of the patch tokens",
    )
    cls = replace(
        default,
        name=f"{name}-cls",
        embed_dim=width,
        pooling="cls",
        description=f"{arch}/8 + 8 registers (Aignostics, Hub code); CLS token only.",
        pooling_reason="variant: the CLS token alone",
    )
    return default, cls


RECENT: tuple[ExtractorSpec, ...] = (
    replace(
        _BASE,
        name="genbio-pathfm",
        loader=genbio_loader,
        embed_dim=3 * 1536,
        num_prefix_tokens=5,
        mean=_GENBIO_MEAN,
        std=_GENBIO_STD,
        dtype="fp32",
        params_m=1133.7,
        hub_id="genbio-ai/genbio-pathfm",
        weights_file="model.pth",
        licence="GenBio AI Community Licence",
        licence_restrictions=("see-licence",),
        citation=(
            "Kapse S, Aygun M, Cole E, Lundberg E, Song L, Xing EP. GenBio-PathFM: a "
            "state-of-the-art foundation model for histopathology. bioRxiv 2026"
        ),
        aliases=("genbio", "genbiopathfm"),
        convert_state_dict=convert_dinov3,
        description=(
            "ViT-g/16 (RoPE, 4 storage tokens, 1 input channel) run once per R, G, B channel; "
            "the three CLS tokens concatenated (4,608); no resize; fp32 as the reference."
        ),
        pooling_reason="authors' code: the CLS token of each channel, concatenated",
        timm=GENBIO_ARCH,
    ),
    *_rudolf("rudolfv-2", "Aignostics/RudolfV-2", 1536, "ViT-g", None),
    *_rudolf("rudolfv-2-b", "Aignostics/RudolfV-2-B", 768, "ViT-B", None),
    *_rudolf("rudolfv-2-s", "Aignostics/RudolfV-2-S", 384, "ViT-S", None),
    replace(
        _BASE,
        name="openmidnight",
        loader=hub_file_loader,
        embed_dim=1536,
        num_prefix_tokens=5,
        params_m=1136.5,
        hub_id="SophontAI/OpenMidnight",
        weights_file="teacher_checkpoint_load.pt",
        gated=True,
        citation="SophontAI. OpenMidnight (2025). huggingface.co/SophontAI/OpenMidnight",
        aliases=("open-midnight",),
        convert_state_dict=convert_dinov2_hub,
        description=(
            "DINOv2 ViT-g/14 + 4 registers (SophontAI), an open reproduction of Midnight; CLS "
            "after the final norm (the DINOv2 hub model's output), ImageNet mean/std."
        ),
        pooling_reason="authors' loader: the DINOv2 model's output, its normalised CLS token",
        timm=VITG14_REG4,
    ),
    replace(
        _WAIV,
        name="mascaret",
        embed_dim=1536,
        mean=HALF_MEAN,
        std=HALF_STD,
        hub_id="wearewaiv/mascaret",
        description=(
            "Midnight-12k (ViT-g/14) fine-tuned for acquisition robustness (Waiv, Hub code); "
            "the checkpoint's own encode(); mean/std of its parent (the checkpoint config "
            "holds pixel_mean/pixel_std)."
        ),
        pooling_reason="card: the checkpoint's own encode() (its native pooling)",
    ),
    replace(
        _WAIV,
        name="phaet",
        embed_dim=1024,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        hub_id="wearewaiv/phaet",
        description=(
            "Phikon-v2 (ViT-L/16) fine-tuned for acquisition robustness (Waiv, Hub code); the "
            "checkpoint's own encode(); mean/std of its parent."
        ),
        pooling_reason="card: the checkpoint's own encode() (its native pooling)",
    ),
    replace(
        _BASE,
        name="mettle",
        loader=mettle_loader,
        embed_dim=3072,
        pooling="cls+mean",
        num_prefix_tokens=5,
        mean=BIOPTIMUS_MEAN,
        std=BIOPTIMUS_STD,
        params_m=1138.1,
        hub_id="slideflow-labs/Mettle",
        weights_file="model.safetensors",
        licence="CC-BY-NC-ND-4.0",
        licence_restrictions=("non-commercial", "no-derivatives"),
        citation="slideflow labs. Mettle (2026). huggingface.co/slideflow-labs/Mettle",
        convert_state_dict=convert_mettle,
        description=(
            "H-optimus-0's ViT-g/14 reg4 fine-tuned for scanner/stain robustness, plus a refine "
            "head on the CLS token (fp32); the card's feature is the headed CLS concatenated "
            "with the unheaded patch mean (3,072). `mettle-cls` is the headed CLS."
        ),
        pooling_reason="card: headed CLS + mean of patch tokens (its benchmark representation)",
        timm=VITG14_REG4,
    ),
    replace(
        _HUB_CODE,
        name="keep",
        embed_dim=768,
        pooling="model",
        num_prefix_tokens=1,
        resize=224,
        params_m=None,
        hub_id="Astaxanthin/KEEP",
        licence="see model card",
        citation=(
            "Zhou X, Zhang X, Wu C, et al. A knowledge-enhanced pathology vision-language "
            "foundation model for cancer diagnosis (KEEP). arXiv:2412.13126"
        ),
        description="KEEP vision-language model (Hub code): encode_image(), the projected image "
        "embedding; resize 224 bicubic, ImageNet mean/std.",
        pooling_reason="authors' usage: encode_image()",
        hf=HFArch(trust_remote_code=True, output="call", post=_encode_image),
    ),
    replace(
        _BASE,
        name="musk",
        loader=musk_loader,
        embed_dim=1024,
        pooling="model",
        input_size=384,
        resize=384,
        mean=HALF_MEAN,
        std=HALF_STD,
        params_m=None,
        hub_id="xiangjx/musk",
        gated=True,
        licence="CC-BY-NC-ND-4.0",
        licence_restrictions=("non-commercial", "no-derivatives"),
        citation=(
            "Xiang J, Wang X, Zhang X, et al. A vision-language foundation model for precision "
            "oncology (MUSK). Nature 2025"
        ),
        requires=_MUSK,
        description=(
            "MUSK (BEiT-3 style, ViT-L/16 image branch) at 384 px: resize 384 bicubic, "
            "Inception mean/std 0.5, the global image feature without head or normalisation."
        ),
        pooling_reason="authors' usage: return_global=True, with_head=False",
    ),
    replace(
        _BASE,
        name="mstar",
        embed_dim=1024,
        params_m=303.3,
        hub_id="Wangyh/mSTAR",
        gated=True,
        licence="CC-BY-NC-ND-4.0",
        licence_restrictions=("non-commercial", "no-derivatives"),
        citation=(
            "Xu Y, Wang Y, Zhou F, et al. A multimodal knowledge-enhanced whole-slide pathology "
            "foundation model (mSTAR). arXiv:2407.15362"
        ),
        description="ViT-L/16 (UNI architecture, LayerScale 1e-5); CLS token; ImageNet mean/std.",
        pooling_reason="card: the model's CLS output",
        timm=VITL16_UNI,
    ),
    replace(
        _BASE,
        name="digepath",
        embed_dim=1024,
        params_m=303.3,
        hub_id="xtxx/Digepath",
        gated=True,
        licence="CC-BY-NC-4.0",
        licence_restrictions=("non-commercial",),
        citation=(
            "Zhu L, et al. Subspecialty-specific foundation model for intelligent "
            "gastrointestinal pathology (Digepath). arXiv:2505.21928"
        ),
        description="ViT-L/16 DINOv2-trained on GI pathology; CLS token; ImageNet mean/std.",
        pooling_reason="card: the model's CLS output",
        timm=VITL16_UNI,
    ),
)

RECENT = (
    *RECENT,
    replace(
        next(s for s in RECENT if s.name == "mettle"),
        name="mettle-cls",
        embed_dim=1536,
        pooling="cls",
        description="Mettle: the refined (headed) CLS token alone.",
        pooling_reason="variant: the headed CLS token alone",
    ),
)
