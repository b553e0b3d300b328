"""Built-in extractors: every model of the reference PLISM leaderboard, declared as data.

Loader facts (Hub ids, timm keyword arguments, mean/std, pooling) follow each
model's card and the reference benchmark; parameter counts are approximate.
"""

from __future__ import annotations

from typing import Any

from plismbench.extractors.loaders import (
    conch_loader,
    convert_dinov2_chunks,
    convert_drop_heads,
    timm_loader,
    transformers_loader,
    url_loader,
)
from plismbench.extractors.spec import (
    BIOPTIMUS_MEAN,
    BIOPTIMUS_STD,
    HALF_MEAN,
    HALF_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ExtractorSpec,
)

_SWIGLU: dict[str, Any] = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}
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

_H0_MINI_EXTRA: dict[str, Any] = {
    "timm_kwargs": _SWIGLU,
    "arch": "vit_base_patch14_reg4_dinov2",
    "arch_kwargs": {"img_size": 224, "init_values": 1e-5, "num_classes": 0},
}
_H0_MINI_CITE = (
    "Filiot A, Dop N, Tchita O, et al. Distilling foundation models for robust and efficient "
    "models in digital pathology. MICCAI 2025. arXiv:2501.16239"
)
_HOPTIMUS_EXTRA: dict[str, Any] = {
    "timm_kwargs": {"init_values": 1e-5, "dynamic_img_size": False},
    "arch": "vit_giant_patch14_reg4_dinov2",
    "arch_kwargs": {"img_size": 224, "num_classes": 0, "global_pool": "token"},
}
_VIRCHOW_ARCH: dict[str, Any] = {
    "img_size": 224,
    "init_values": 1e-5,
    "num_classes": 0,
    "mlp_ratio": 5.3375,
    "global_pool": "",
}
_KAIKO_CITE = (
    "Aben N, de Jong ED, Gatopoulos I, et al. Towards large-scale training of pathology "
    "foundation models. arXiv:2404.15217 (2024)"
)

BUILTINS: tuple[ExtractorSpec, ...] = (
    ExtractorSpec(
        name="h0-mini",
        loader=timm_loader,
        embed_dim=768,
        pooling="cls",
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
        extra=_H0_MINI_EXTRA,
    ),
    ExtractorSpec(
        name="h0-mini-cls-mean",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls+mean",
        num_prefix_tokens=5,
        mean=BIOPTIMUS_MEAN,
        std=BIOPTIMUS_STD,
        params_m=86,
        hub_id="bioptimus/H0-mini",
        gated=True,
        licence=_NC_ND,
        citation=_H0_MINI_CITE,
        aliases=("h0-mini-cls+mean",),
        description=(
            "H0-mini, CLS concatenated with the mean of the patch tokens (registers excluded)."
        ),
        extra=_H0_MINI_EXTRA,
    ),
    ExtractorSpec(
        name="h-optimus-0",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls",
        num_prefix_tokens=5,
        mean=BIOPTIMUS_MEAN,
        std=BIOPTIMUS_STD,
        params_m=1134,
        hub_id="bioptimus/H-optimus-0",
        gated=True,
        licence="Apache-2.0",
        citation=(
            "Saillard C, Jenatton R, Llinares-López F, et al. H-optimus-0 (2024). "
            "github.com/bioptimus/releases"
        ),
        description="ViT-g/14 + 4 registers (Bioptimus).",
        extra=_HOPTIMUS_EXTRA,
    ),
    ExtractorSpec(
        name="h-optimus-1",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls",
        num_prefix_tokens=5,
        mean=BIOPTIMUS_MEAN,
        std=BIOPTIMUS_STD,
        params_m=1134,
        hub_id="bioptimus/H-optimus-1",
        gated=True,
        licence=_NC_ND,
        citation="Bioptimus. H-optimus-1 (2025). huggingface.co/bioptimus/H-optimus-1",
        description="ViT-g/14 + 4 registers (Bioptimus).",
        extra=_HOPTIMUS_EXTRA,
    ),
    ExtractorSpec(
        name="uni",
        loader=timm_loader,
        embed_dim=1024,
        pooling="cls",
        num_prefix_tokens=1,
        params_m=303,
        hub_id="MahmoodLab/UNI",
        gated=True,
        licence=_NC_ND,
        citation=(
            "Chen RJ, Ding T, Lu MY, et al. Towards a general-purpose foundation model for "
            "computational pathology. Nat Med 2024"
        ),
        aliases=("uni-v1",),
        description="ViT-L/16 (Mahmood Lab).",
        extra={
            "timm_kwargs": {"init_values": 1e-5, "dynamic_img_size": True},
            "arch": "vit_large_patch16_224",
            "arch_kwargs": {"img_size": 224, "num_classes": 0},
        },
    ),
    ExtractorSpec(
        name="uni2-h",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls",
        num_prefix_tokens=9,
        params_m=681,
        hub_id="MahmoodLab/UNI2-h",
        gated=True,
        licence=_NC_ND,
        citation=(
            "Chen RJ, Ding T, Lu MY, et al. Towards a general-purpose foundation model for "
            "computational pathology. Nat Med 2024"
        ),
        aliases=("uni-v2",),
        description="ViT-H/14 + 8 registers (Mahmood Lab).",
        extra={
            "timm_kwargs": {
                "img_size": 224,
                "patch_size": 14,
                "depth": 24,
                "num_heads": 24,
                "init_values": 1e-5,
                "embed_dim": 1536,
                "mlp_ratio": 2.66667 * 2,
                "num_classes": 0,
                "no_embed_class": True,
                "reg_tokens": 8,
                "dynamic_img_size": True,
                **_SWIGLU,
            },
            "arch": "vit_giant_patch14_224",
        },
    ),
    ExtractorSpec(
        name="virchow",
        loader=timm_loader,
        embed_dim=2560,
        pooling="cls+mean",
        num_prefix_tokens=1,
        params_m=632,
        hub_id="paige-ai/Virchow",
        gated=True,
        licence="Apache-2.0",
        citation=(
            "Vorontsov E, Bozkurt A, Casson A, et al. A foundation model for clinical-grade "
            "computational pathology and rare cancers detection. Nat Med 2024"
        ),
        description="ViT-H/14 (Paige); CLS + mean of patch tokens.",
        extra={
            "timm_kwargs": _SWIGLU,
            "arch": "vit_huge_patch14_224",
            "arch_kwargs": _VIRCHOW_ARCH,
        },
    ),
    ExtractorSpec(
        name="virchow2",
        loader=timm_loader,
        embed_dim=2560,
        pooling="cls+mean",
        num_prefix_tokens=5,
        params_m=632,
        hub_id="paige-ai/Virchow2",
        gated=True,
        licence=_NC_ND,
        citation=(
            "Zimmermann E, Vorontsov E, Viret J, et al. Virchow2: scaling self-supervised "
            "mixed magnification models in pathology. arXiv:2408.00738"
        ),
        description="ViT-H/14 + 4 registers (Paige); CLS + mean of patch tokens.",
        extra={
            "timm_kwargs": _SWIGLU,
            "arch": "vit_huge_patch14_224",
            "arch_kwargs": {**_VIRCHOW_ARCH, "reg_tokens": 4},
        },
    ),
    ExtractorSpec(
        name="prov-gigapath",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls",
        num_prefix_tokens=1,
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
        extra={
            "arch": "vit_giant_patch14_dinov2",
            "arch_kwargs": {
                "img_size": 224,
                "patch_size": 16,
                "embed_dim": 1536,
                "depth": 40,
                "num_heads": 24,
                "init_values": 1e-5,
                "mlp_ratio": 5.33334,
                "num_classes": 0,
            },
        },
    ),
    ExtractorSpec(
        name="phikon",
        loader=transformers_loader,
        embed_dim=768,
        pooling="cls",
        num_prefix_tokens=1,
        params_m=86,
        hub_id="owkin/phikon",
        licence="Owkin non-commercial",
        citation=(
            "Filiot A, Ghermi R, Olivier A, et al. Scaling self-supervised learning for "
            "histopathology with masked image modeling. medRxiv 2023"
        ),
        requires=_TRANSFORMERS,
        description="ViT-B/16 iBOT (Owkin); CLS of the last hidden state.",
        extra={
            "hf_class": "ViTModel",
            "hf_config": (
                "ViTConfig",
                {
                    "hidden_size": 768,
                    "num_hidden_layers": 12,
                    "num_attention_heads": 12,
                    "intermediate_size": 3072,
                    "image_size": 224,
                    "patch_size": 16,
                },
            ),
        },
    ),
    ExtractorSpec(
        name="phikon-v2",
        loader=transformers_loader,
        embed_dim=1024,
        pooling="cls",
        num_prefix_tokens=1,
        params_m=303,
        hub_id="owkin/phikon-v2",
        licence="Owkin non-commercial",
        citation=(
            "Filiot A, Jacob P, Mac Kain A, Saillard C. Phikon-v2, a large and public feature "
            "extractor for biomarker prediction. arXiv:2409.09173"
        ),
        requires=_TRANSFORMERS,
        description="ViT-L/16 DINOv2 (Owkin); CLS of the last hidden state.",
        extra={
            "hf_class": "Dinov2Model",
            "hf_config": (
                "Dinov2Config",
                {
                    "hidden_size": 1024,
                    "num_hidden_layers": 24,
                    "num_attention_heads": 16,
                    "image_size": 224,
                    "patch_size": 16,
                    "layerscale_value": 1e-5,
                },
            ),
        },
    ),
    ExtractorSpec(
        name="conch",
        loader=conch_loader,
        embed_dim=512,
        pooling="model",
        num_prefix_tokens=1,
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
    ExtractorSpec(
        name="conch-v1.5",
        loader=transformers_loader,
        embed_dim=768,
        pooling="model",
        num_prefix_tokens=1,
        # The encoder is built for 448 px (reference benchmark: bilinear resize to 448).
        input_size=448,
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
        description="CONCH v1.5 image encoder (ViT-L/16 at 448 px), taken from TITAN (Hub code).",
        extra={
            "trust_remote_code": True,
            "hf_output": "call",
            "hf_post": lambda m: m.return_conch()[0],
        },
    ),
    ExtractorSpec(
        name="plip",
        loader=transformers_loader,
        embed_dim=512,
        pooling="model",
        num_prefix_tokens=1,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        params_m=88,
        hub_id="vinid/plip",
        citation=(
            "Huang Z, Bianchi F, Yuksekgonul M, et al. A visual-language foundation model for "
            "pathology image analysis using medical Twitter. Nat Med 2023"
        ),
        requires=_TRANSFORMERS,
        description="CLIP ViT-B/32 image features (projected, 512).",
        extra={
            "hf_class": "CLIPModel",
            "hf_output": "image_features",
            "hf_random_class": "CLIPVisionModelWithProjection",
            "hf_config": (
                "CLIPVisionConfig",
                {
                    "hidden_size": 768,
                    "num_hidden_layers": 12,
                    "num_attention_heads": 12,
                    "intermediate_size": 3072,
                    "image_size": 224,
                    "patch_size": 32,
                    "projection_dim": 512,
                },
            ),
        },
    ),
    ExtractorSpec(
        name="gpfm",
        loader=url_loader,
        embed_dim=1024,
        pooling="cls",
        num_prefix_tokens=1,
        params_m=303,
        url="https://github.com/birkhoffkiki/GPFM/releases/download/ckpt/GPFM.pth",
        citation=(
            "Ma J, Guo Z, Zhou F, et al. Towards a generalizable pathology foundation model "
            "via unified knowledge distillation. arXiv:2407.18449"
        ),
        convert_state_dict=convert_dinov2_chunks,
        description="ViT-L/14 DINOv2-style (HKUST); weights from the GitHub release.",
        extra={
            "arch": "vit_large_patch14_dinov2",
            "arch_kwargs": {
                "img_size": 224,
                "patch_size": 14,
                "init_values": 1e-5,
                "qkv_bias": True,
                "dynamic_img_size": True,
                "num_classes": 0,
            },
            "file_name": "GPFM.pth",
        },
    ),
    ExtractorSpec(
        name="hibou-b",
        loader=transformers_loader,
        embed_dim=768,
        pooling="cls",
        num_prefix_tokens=5,
        mean=_HIBOU_MEAN,
        std=_HIBOU_STD,
        params_m=86,
        hub_id="histai/hibou-b",
        licence="Apache-2.0",
        citation=(
            "Nechaev D, Pchelnikov A, Ivanova E. Hibou: a family of foundational vision "
            "transformers for pathology. arXiv:2406.05074"
        ),
        aliases=("hibou-base",),
        requires=_TRANSFORMERS,
        description="ViT-B/14 + registers (HistAI, Hub code); CLS of the last hidden state.",
        extra={"trust_remote_code": True},
    ),
    ExtractorSpec(
        name="hibou-l",
        loader=transformers_loader,
        embed_dim=1024,
        pooling="cls",
        num_prefix_tokens=5,
        mean=_HIBOU_MEAN,
        std=_HIBOU_STD,
        params_m=303,
        hub_id="histai/hibou-L",
        gated=True,
        licence="Apache-2.0",
        citation=(
            "Nechaev D, Pchelnikov A, Ivanova E. Hibou: a family of foundational vision "
            "transformers for pathology. arXiv:2406.05074"
        ),
        aliases=("hibou-large",),
        requires=_TRANSFORMERS,
        description="ViT-L/14 + registers (HistAI, Hub code); CLS of the last hidden state.",
        extra={"trust_remote_code": True},
    ),
    ExtractorSpec(
        name="kaiko-vit-b8",
        loader=timm_loader,
        embed_dim=768,
        pooling="cls",
        num_prefix_tokens=1,
        mean=HALF_MEAN,
        std=HALF_STD,
        params_m=86,
        hub_id="1aurent/vit_base_patch8_224.kaiko_ai_towards_large_pathology_fms",
        licence="see model card",
        citation=_KAIKO_CITE,
        aliases=("kaiko-vit-base", "kaiko-vitb8"),
        description="ViT-B/8 DINO (kaiko.ai).",
        extra={
            "timm_kwargs": {"dynamic_img_size": True, "num_classes": 0},
            "arch": "vit_base_patch8_224",
        },
    ),
    ExtractorSpec(
        name="kaiko-vit-l14",
        loader=timm_loader,
        embed_dim=1024,
        pooling="cls",
        num_prefix_tokens=5,
        mean=HALF_MEAN,
        std=HALF_STD,
        params_m=303,
        hub_id="1aurent/vit_large_patch14_reg4_dinov2.kaiko_ai_towards_large_pathology_fms",
        licence="see model card",
        citation=_KAIKO_CITE,
        aliases=("kaiko-vit-large", "kaiko-vitl14"),
        description="ViT-L/14 + 4 registers DINOv2 (kaiko.ai); built at 518, run at 224.",
        extra={
            "timm_kwargs": {"dynamic_img_size": True, "num_classes": 0},
            "arch": "vit_large_patch14_reg4_dinov2",
            "arch_kwargs": {"img_size": 518},
        },
    ),
    ExtractorSpec(
        name="midnight-12k",
        loader=transformers_loader,
        embed_dim=3072,
        pooling="cls+mean",
        num_prefix_tokens=1,
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
        requires=_TRANSFORMERS,
        description="ViT-g/14 DINOv2 (kaiko.ai); CLS + mean of patch tokens.",
        extra={
            "hf_class": "Dinov2Model",
            "hf_config": (
                "Dinov2Config",
                {
                    "hidden_size": 1536,
                    "num_hidden_layers": 40,
                    "num_attention_heads": 24,
                    "image_size": 224,
                    "patch_size": 14,
                    "use_swiglu_ffn": True,
                    "layerscale_value": 1e-5,
                },
            ),
        },
    ),
    ExtractorSpec(
        name="lunit-vit-s8",
        loader=url_loader,
        embed_dim=384,
        pooling="cls",
        num_prefix_tokens=1,
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
        extra={
            "arch": "vit_small_patch8_224",
            "arch_kwargs": {"num_classes": 0},
            "file_name": "lunit_vit_s8.pth",
        },
    ),
    ExtractorSpec(
        name="dinov2-vit-g14",
        loader=timm_loader,
        embed_dim=1536,
        pooling="cls",
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
        extra={
            "timm_kwargs": {"dynamic_img_size": True, "num_classes": 0},
            "arch": "vit_giant_patch14_reg4_dinov2",
            "arch_kwargs": {"img_size": 518},
        },
    ),
)

#: Names the reference benchmark used for its feature folders (kept as aliases).
REFERENCE_NAMES: dict[str, str] = {
    "h0_mini": "h0-mini",
    "hoptimus0": "h-optimus-0",
    "hoptimus1": "h-optimus-1",
    "uni2h": "uni2-h",
    "provgigapath": "prov-gigapath",
    "conchv15": "conch-v1.5",
    "hibou_base": "hibou-b",
    "hibou_large": "hibou-l",
    "phikonv2": "phikon-v2",
    "kaiko_vit_base": "kaiko-vit-b8",
    "kaiko_vit_large": "kaiko-vit-l14",
    "midnight_12k": "midnight-12k",
    "lunit_vit_small_8": "lunit-vit-s8",
    "dinov2_vit_giant_imagenet": "dinov2-vit-g14",
}
