"""Built-in extractors: every model of the reference PLISM leaderboard, declared as data.

Loader facts (Hub ids, timm keyword arguments, mean/std, pooling) follow each model's card
and the reference benchmark (owkin/plism-benchmark); parameter counts are the architecture's
(tests build every timm entry on the meta device and compare). Each entry is a
:func:`dataclasses.replace` of one base, and each architecture is declared once
(:class:`~plismbench.extractors.archs.TimmArch` / :class:`~plismbench.extractors.archs.HFArch`).

Precision: the reference autocasts its models in fp16 on a GPU, so ``dtype="fp16"`` here,
except CONCH and PLIP: it calls their ``.module.encode_image`` / ``.module.get_image_features``,
which bypass its autocast wrapper, so they run in fp32 there and here. ``extract --precision``
overrides it (see docs/extract.md for the measured differences).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from plismbench.extractors.archs import HFArch, TimmArch
from plismbench.extractors.loaders import (
    convert_dinov2_chunks,
    convert_drop_heads,
    timm_loader,
    url_loader,
)
from plismbench.extractors.loaders_hf import conch_loader, transformers_loader
from plismbench.extractors.spec import (
    BIOPTIMUS_MEAN,
    BIOPTIMUS_STD,
    HALF_MEAN,
    HALF_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ExtractorSpec,
)

_TRANSFORMERS = (("transformers", "pip install 'transformers>=4.44'"),)
_CONCH = (
    (
        "conch",
        "pip install git+https://github.com/Mahmoodlab/CONCH.git (CONCH is not on PyPI)",
    ),
)
_LUNIT_MEAN = (0.70322989, 0.53606487, 0.66096631)
_LUNIT_STD = (0.21716536, 0.26081574, 0.20723464)
_HIBOU_MEAN = (0.7068, 0.5755, 0.722)
_HIBOU_STD = (0.195, 0.2316, 0.1816)
_NC_ND = "CC-BY-NC-ND-4.0"
_UNI_CITE = (
    "Chen RJ, Ding T, Lu MY, et al. Towards a general-purpose foundation model for "
    "computational pathology. Nat Med 2024"
)
_H0_MINI_CITE = (
    "Filiot A, Dop N, Tchita O, et al. Distilling foundation models for robust and efficient "
    "models in digital pathology. MICCAI 2025. arXiv:2501.16239"
)
_KAIKO_CITE = (
    "Aben N, de Jong ED, Gatopoulos I, et al. Towards large-scale training of pathology "
    "foundation models. arXiv:2404.15217 (2024)"
)
_HIBOU_CITE = (
    "Nechaev D, Pchelnikov A, Ivanova E. Hibou: a family of foundational vision "
    "transformers for pathology. arXiv:2406.05074"
)

#: What every built-in shares: the reference's fp16 autocast, CLS pooling, timm.
_BASE = ExtractorSpec(name="base", loader=timm_loader, embed_dim=0, dtype="fp16")

# --- architectures, each declared once ----------------------------------------------------
#: H0-mini: ViT-B/14 + 4 registers with a SwiGLU MLP of hidden 2048 (768 * 5.33334 / 2).
H0_MINI_ARCH = TimmArch(
    "vit_base_patch14_reg4_dinov2",
    mlp_ratio=5.33334,
    swiglu=True,
    init_values=1e-5,
    card=("swiglu",),
)
HOPTIMUS_ARCH = TimmArch(
    "vit_giant_patch14_reg4_dinov2",
    init_values=1e-5,
    dynamic_img_size=False,
    global_pool="token",
    card=("init_values", "dynamic_img_size"),
)
UNI2H_ARCH = TimmArch(
    "vit_giant_patch14_224",
    patch_size=14,
    embed_dim=1536,
    depth=24,
    num_heads=24,
    mlp_ratio=2.66667 * 2,
    swiglu=True,
    init_values=1e-5,
    reg_tokens=8,
    no_embed_class=True,
    dynamic_img_size=True,
    card=(
        "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "swiglu",
        "init_values", "reg_tokens", "no_embed_class", "dynamic_img_size",
    ),
)  # fmt: skip
VIRCHOW_ARCH = TimmArch(
    "vit_huge_patch14_224",
    mlp_ratio=5.3375,
    swiglu=True,
    init_values=1e-5,
    global_pool="",
    card=("swiglu",),
)

_H0_MINI = replace(
    _BASE,
    name="h0-mini",
    embed_dim=768,
    num_prefix_tokens=5,
    mean=BIOPTIMUS_MEAN,
    std=BIOPTIMUS_STD,
    params_m=86,
    hub_id="bioptimus/H0-mini",
    gated=True,
    licence=_NC_ND,
    citation=_H0_MINI_CITE,
    aliases=("h0mini",),
    description="ViT-B/14 + 4 registers distilled from H-optimus-0; CLS after the final norm.",
    timm=H0_MINI_ARCH,
)
_HOPTIMUS = replace(
    _BASE,
    name="h-optimus",
    embed_dim=1536,
    num_prefix_tokens=5,
    mean=BIOPTIMUS_MEAN,
    std=BIOPTIMUS_STD,
    params_m=1134,
    gated=True,
    description="ViT-g/14 + 4 registers (Bioptimus).",
    timm=HOPTIMUS_ARCH,
)
_UNI = replace(_BASE, gated=True, licence=_NC_ND, citation=_UNI_CITE)
_VIRCHOW = replace(
    _BASE, embed_dim=2560, pooling="cls+mean", params_m=632, gated=True, timm=VIRCHOW_ARCH
)
_HF = replace(_BASE, loader=transformers_loader, requires=_TRANSFORMERS)
_HIBOU = replace(_HF, mean=_HIBOU_MEAN, std=_HIBOU_STD, num_prefix_tokens=5, citation=_HIBOU_CITE)
_KAIKO = replace(_BASE, mean=HALF_MEAN, std=HALF_STD, citation=_KAIKO_CITE)


def _titan_conch(model: Any) -> Any:
    """TITAN's CONCH v1.5 image encoder."""
    return model.return_conch()[0]


BUILTINS: tuple[ExtractorSpec, ...] = (
    _H0_MINI,
    replace(
        _H0_MINI,
        name="h0-mini-cls-mean",
        embed_dim=1536,
        pooling="cls+mean",
        aliases=("h0-mini-cls+mean",),
        description=(
            "H0-mini, CLS concatenated with the mean of the patch tokens (registers excluded)."
        ),
    ),
    replace(
        _HOPTIMUS,
        name="h-optimus-0",
        hub_id="bioptimus/H-optimus-0",
        licence="Apache-2.0",
        citation=(
            "Saillard C, Jenatton R, Llinares-López F, et al. H-optimus-0 (2024). "
            "github.com/bioptimus/releases"
        ),
    ),
    replace(
        _HOPTIMUS,
        name="h-optimus-1",
        hub_id="bioptimus/H-optimus-1",
        licence=_NC_ND,
        citation="Bioptimus. H-optimus-1 (2025). huggingface.co/bioptimus/H-optimus-1",
    ),
    replace(
        _UNI,
        name="uni",
        embed_dim=1024,
        params_m=303,
        hub_id="MahmoodLab/UNI",
        aliases=("uni-v1",),
        description="ViT-L/16 (Mahmood Lab).",
        timm=TimmArch(
            "vit_large_patch16_224",
            init_values=1e-5,
            dynamic_img_size=True,
            card=("init_values", "dynamic_img_size"),
        ),
    ),
    replace(
        _UNI,
        name="uni2-h",
        embed_dim=1536,
        num_prefix_tokens=9,
        params_m=681,
        hub_id="MahmoodLab/UNI2-h",
        aliases=("uni-v2",),
        description="ViT-H/14 + 8 registers (Mahmood Lab).",
        timm=UNI2H_ARCH,
    ),
    replace(
        _VIRCHOW,
        name="virchow",
        hub_id="paige-ai/Virchow",
        licence="Apache-2.0",
        citation=(
            "Vorontsov E, Bozkurt A, Casson A, et al. A foundation model for clinical-grade "
            "computational pathology and rare cancers detection. Nat Med 2024"
        ),
        description="ViT-H/14 (Paige); CLS + mean of patch tokens.",
    ),
    replace(
        _VIRCHOW,
        name="virchow2",
        num_prefix_tokens=5,
        hub_id="paige-ai/Virchow2",
        licence=_NC_ND,
        citation=(
            "Zimmermann E, Vorontsov E, Viret J, et al. Virchow2: scaling self-supervised "
            "mixed magnification models in pathology. arXiv:2408.00738"
        ),
        description="ViT-H/14 + 4 registers (Paige); CLS + mean of patch tokens.",
        timm=replace(VIRCHOW_ARCH, reg_tokens=4),
    ),
    replace(
        _BASE,
        name="prov-gigapath",
        embed_dim=1536,
        resize=256,
        interpolation="bicubic",
        params_m=1134,
        hub_id="prov-gigapath/prov-gigapath",
        gated=True,
        licence="Apache-2.0",
        citation=(
            "Xu H, Usuyama N, Bagga J, et al. A whole-slide foundation model for digital "
            "pathology from real-world data. Nature 2024"
        ),
        aliases=("gigapath",),
        description="ViT-g/16 tile encoder (Microsoft / Providence); resize 256, centre crop 224.",
        timm=TimmArch(
            "vit_giant_patch14_dinov2",
            patch_size=16,
            embed_dim=1536,
            depth=40,
            num_heads=24,
            mlp_ratio=5.33334,
            init_values=1e-5,
        ),
    ),
    replace(
        _HF,
        name="phikon",
        embed_dim=768,
        params_m=86,
        hub_id="owkin/phikon",
        licence="Owkin non-commercial",
        citation=(
            "Filiot A, Ghermi R, Olivier A, et al. Scaling self-supervised learning for "
            "histopathology with masked image modeling. medRxiv 2023"
        ),
        description="ViT-B/16 iBOT (Owkin); CLS of the last hidden state.",
        hf=HFArch(
            model_class="ViTModel",
            config_class="ViTConfig",
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            image_size=224,
            patch_size=16,
        ),
    ),
    replace(
        _HF,
        name="phikon-v2",
        embed_dim=1024,
        params_m=303,
        hub_id="owkin/phikon-v2",
        licence="Owkin non-commercial",
        citation=(
            "Filiot A, Jacob P, Mac Kain A, Saillard C. Phikon-v2, a large and public feature "
            "extractor for biomarker prediction. arXiv:2409.09173"
        ),
        description="ViT-L/16 DINOv2 (Owkin); CLS of the last hidden state.",
        hf=HFArch(
            model_class="Dinov2Model",
            config_class="Dinov2Config",
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=224,
            patch_size=16,
            layerscale_value=1e-5,
        ),
    ),
    replace(
        _BASE,
        name="conch",
        loader=conch_loader,
        dtype="fp32",  # the reference calls .module.encode_image, past its fp16 autocast
        embed_dim=512,
        pooling="model",
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        params_m=90,
        hub_id="MahmoodLab/CONCH",
        gated=True,
        licence=_NC_ND,
        citation=(
            "Lu MY, Chen B, Williamson DFK, et al. A visual-language foundation model for "
            "computational pathology. Nat Med 2024"
        ),
        aliases=("conch-v1",),
        requires=_CONCH,
        description="CONCH ViT-B/16 image encoder, before the contrastive projection.",
    ),
    replace(
        _HF,
        name="conch-v1.5",
        embed_dim=768,
        pooling="model",
        # 224 px, the tiles' own size, as the reference at its latest commit (c3f0dea removed
        # its 448 resize). The model card and TRIDENT use 448 (bilinear resize of 512 px
        # patches); ``replace(spec, name=..., input_size=448)`` registers that variant.
        input_size=224,
        interpolation="bilinear",
        params_m=307,
        hub_id="MahmoodLab/TITAN",
        gated=True,
        licence=_NC_ND,
        citation=(
            "Ding T, Wagner SJ, Song AH, et al. Multimodal whole slide foundation model for "
            "pathology (TITAN). arXiv:2411.19666"
        ),
        aliases=("conchv15", "conch-v15"),
        requires=(*_TRANSFORMERS, ("einops", "pip install einops einops-exts")),
        description="CONCH v1.5 image encoder (ViT-L/16), taken from TITAN (Hub code); 224 px.",
        hf=HFArch(trust_remote_code=True, output="call", post=_titan_conch),
    ),
    replace(
        _HF,
        name="plip",
        dtype="fp32",  # the reference calls .module.get_image_features, past its autocast
        embed_dim=512,
        pooling="model",
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        params_m=88,
        hub_id="vinid/plip",
        citation=(
            "Huang Z, Bianchi F, Yuksekgonul M, et al. A visual-language foundation model for "
            "pathology image analysis using medical Twitter. Nat Med 2023"
        ),
        description="CLIP ViT-B/32 image features (projected, 512).",
        hf=HFArch(
            model_class="CLIPModel",
            config_class="CLIPVisionConfig",
            random_class="CLIPVisionModelWithProjection",
            output="image_features",
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            image_size=224,
            patch_size=32,
            projection_dim=512,
        ),
    ),
    replace(
        _BASE,
        name="gpfm",
        loader=url_loader,
        embed_dim=1024,
        params_m=303,
        url="https://github.com/birkhoffkiki/GPFM/releases/download/ckpt/GPFM.pth",
        citation=(
            "Ma J, Guo Z, Zhou F, et al. Towards a generalizable pathology foundation model "
            "via unified knowledge distillation. arXiv:2407.18449"
        ),
        convert_state_dict=convert_dinov2_chunks,
        description="ViT-L/14 DINOv2-style (HKUST); weights from the GitHub release.",
        timm=TimmArch(
            "vit_large_patch14_dinov2",
            patch_size=14,
            init_values=1e-5,
            qkv_bias=True,
            dynamic_img_size=True,
        ),
        weights_file="GPFM.pth",
    ),
    replace(
        _HIBOU,
        name="hibou-b",
        embed_dim=768,
        params_m=86,
        hub_id="histai/hibou-b",
        licence="Apache-2.0",
        aliases=("hibou-base",),
        description="ViT-B/14 + registers (HistAI, Hub code); CLS of the last hidden state.",
        hf=HFArch(trust_remote_code=True),
    ),
    replace(
        _HIBOU,
        name="hibou-l",
        embed_dim=1024,
        params_m=303,
        hub_id="histai/hibou-L",
        gated=True,
        licence="Apache-2.0",
        aliases=("hibou-large",),
        description="ViT-L/14 + registers (HistAI, Hub code); CLS of the last hidden state.",
        hf=HFArch(trust_remote_code=True),
    ),
    replace(
        _KAIKO,
        name="kaiko-vit-b8",
        embed_dim=768,
        params_m=86,
        hub_id="1aurent/vit_base_patch8_224.kaiko_ai_towards_large_pathology_fms",
        aliases=("kaiko-vit-base", "kaiko-vitb8"),
        description="ViT-B/8 DINO (kaiko.ai).",
        timm=TimmArch("vit_base_patch8_224", dynamic_img_size=True, card=("dynamic_img_size",)),
    ),
    replace(
        _KAIKO,
        name="kaiko-vit-l14",
        embed_dim=1024,
        num_prefix_tokens=5,
        params_m=303,
        hub_id="1aurent/vit_large_patch14_reg4_dinov2.kaiko_ai_towards_large_pathology_fms",
        aliases=("kaiko-vit-large", "kaiko-vitl14"),
        description="ViT-L/14 + 4 registers DINOv2 (kaiko.ai); built at 518, run at 224.",
        timm=TimmArch(
            "vit_large_patch14_reg4_dinov2",
            img_size=518,
            dynamic_img_size=True,
            card=("dynamic_img_size",),
        ),
    ),
    replace(
        _HF,
        name="midnight-12k",
        embed_dim=3072,
        pooling="cls+mean",
        mean=HALF_MEAN,
        std=HALF_STD,
        params_m=1137,
        hub_id="kaiko-ai/midnight",
        licence="MIT",
        citation=(
            "Karasikov M, van Doorn J, Känzig N, et al. Training state-of-the-art pathology "
            "foundation models with orders of magnitude less data. arXiv:2504.05186"
        ),
        aliases=("midnight",),
        description="ViT-g/14 DINOv2 (kaiko.ai); CLS + mean of patch tokens.",
        hf=HFArch(
            model_class="Dinov2Model",
            config_class="Dinov2Config",
            hidden_size=1536,
            num_hidden_layers=40,
            num_attention_heads=24,
            image_size=224,
            patch_size=14,
            use_swiglu_ffn=True,
            layerscale_value=1e-5,
        ),
    ),
    replace(
        _BASE,
        name="lunit-vit-s8",
        loader=url_loader,
        embed_dim=384,
        mean=_LUNIT_MEAN,
        std=_LUNIT_STD,
        params_m=22,
        url=(
            "https://github.com/lunit-io/benchmark-ssl-pathology/releases/download/"
            "pretrained-weights/dino_vit_small_patch8_ep200.torch"
        ),
        licence="non-commercial (see card)",
        citation=(
            "Kang M, Song H, Park S, Yoo D, Pereira S. Benchmarking self-supervised learning "
            "on diverse pathology datasets. CVPR 2023"
        ),
        aliases=("lunit-vit-small-8", "lunit-vits8"),
        convert_state_dict=convert_drop_heads,
        description="ViT-S/8 DINO (Lunit); weights from the GitHub release.",
        timm=TimmArch("vit_small_patch8_224"),
        weights_file="lunit_vit_s8.pth",
    ),
    replace(
        _BASE,
        name="dinov2-vit-g14",
        embed_dim=1536,
        num_prefix_tokens=5,
        params_m=1136,
        hub_id="timm/vit_giant_patch14_reg4_dinov2.lvd142m",
        licence="Apache-2.0",
        citation=(
            "Darcet T, Oquab M, Mairal J, Bojanowski P. Vision transformers need registers. "
            "ICLR 2024"
        ),
        aliases=("dinov2-vit-giant-imagenet", "dinov2-giant", "dinov2-vitg14-reg"),
        description=(
            "ImageNet-style natural-image baseline: DINOv2 ViT-g/14 + 4 registers (LVD-142M)."
        ),
        timm=TimmArch(
            "vit_giant_patch14_reg4_dinov2",
            img_size=518,
            dynamic_img_size=True,
            card=("dynamic_img_size",),
        ),
    ),
)

#: Why each built-in pools as it does (``plismbench models`` shows it).
_POOLING_REASONS = {
    "h0-mini": "reference: the CLS token (its leaderboard entry)",
    "h0-mini-cls-mean": "variant: CLS + mean of patch tokens (registers excluded)",
    "h-optimus-0": "card: the CLS token (timm global_pool='token')",
    "h-optimus-1": "card: the CLS token (timm global_pool='token')",
    "uni": "card: the model's CLS output",
    "uni2-h": "card: the model's CLS output",
    "virchow": "card: CLS concatenated with the mean of the patch tokens",
    "virchow2": "card: CLS concatenated with the mean of the patch tokens (registers excluded)",
    "prov-gigapath": "card: the model's CLS output",
    "phikon": "card and reference: CLS of the last hidden state",
    "phikon-v2": "card and reference: CLS of the last hidden state",
    "conch": "reference: encode_image without the contrastive projection",
    "conch-v1.5": "authors: the image encoder's output (TITAN return_conch)",
    "plip": "reference: get_image_features (the CLIP projection)",
    "gpfm": "reference: the CLS token",
    "hibou-b": "reference: CLS of the last hidden state",
    "hibou-l": "reference: CLS of the last hidden state",
    "kaiko-vit-b8": "reference: the CLS token",
    "kaiko-vit-l14": "reference: the CLS token",
    "midnight-12k": "card (kaiko.ai): CLS concatenated with the mean of the patch tokens",
    "lunit-vit-s8": "reference: the CLS token",
    "dinov2-vit-g14": "reference: the CLS token",
}
BUILTINS = tuple(replace(s, pooling_reason=_POOLING_REASONS.get(s.name, "")) for s in BUILTINS)

