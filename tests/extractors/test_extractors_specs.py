"""Spec declarations against their sources: parameter counts, configs, precision, sizes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from plismbench.errors import InputError
from plismbench.extractors.archs import HFArch, TimmArch
from plismbench.extractors.builtins import BUILTINS
from plismbench.extractors.registry import get_extractor, load_extractor

TIMM_SPECS = [s for s in BUILTINS if s.timm is not None]
HF_CONFIG_SPECS = [s for s in BUILTINS if s.hf is not None and s.hf.config_class]


def _params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize("spec", TIMM_SPECS, ids=lambda s: s.name)
def test_timm_architecture_has_the_declared_parameter_count(spec) -> None:
    """The full architecture, built on the meta device (no memory), matches ``params_m``."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(spec.timm.model, pretrained=False, **spec.timm.kwargs())
    assert _params_m(model) == pytest.approx(spec.params_m, rel=0.03), spec.name


def test_h0_mini_has_the_swiglu_hidden_2048_of_the_real_model() -> None:
    """Random / --weights builds of H0-mini are the Hub architecture (86M, SwiGLU 2048)."""
    with torch.device("meta"):
        backbone = get_extractor("h0-mini").loader(get_extractor("h0-mini"), pretrained=False)
    mlp = backbone.model.blocks[0].mlp
    assert type(mlp).__name__ == "GluMlp" and mlp.fc2.in_features == 2048  # SwiGLUPacked
    assert isinstance(mlp.act, torch.nn.SiLU)
    assert _params_m(backbone) == pytest.approx(86, rel=0.01)


@pytest.mark.parametrize("spec", HF_CONFIG_SPECS, ids=lambda s: s.name)
def test_transformers_config_takes_every_declared_field(spec) -> None:
    """transformers configs accept unknown keywords silently: each declared one must land."""
    transformers = pytest.importorskip("transformers")
    config = getattr(transformers, spec.hf.config_class)(**spec.hf.config_kwargs())
    for key, value in spec.hf.config_kwargs().items():
        assert getattr(config, key) == value, (spec.name, key)


def test_architecture_fields_are_typed() -> None:
    with pytest.raises(TypeError):
        TimmArch("vit_base_patch16_224", mlp_ration=4.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="card names unknown fields"):
        TimmArch("vit_base_patch16_224", card=("mlp_ration",))
    with pytest.raises(TypeError):
        HFArch(hiden_size=768)  # type: ignore[call-arg]


def test_precision_is_the_references_fp16_and_conch_v15_runs_at_224() -> None:
    # owkin/plism-benchmark runs its models under torch.autocast("cuda"), i.e. float16, except
    # CONCH and PLIP: it calls .module.encode_image / .module.get_image_features, past autocast.
    assert {s.name for s in BUILTINS if s.dtype != "fp16"} == {"conch", "plip"}
    assert {get_extractor("conch").dtype, get_extractor("plip").dtype} == {"fp32"}
    # Its latest commit feeds CONCH v1.5 the 224 px tiles as they are (no resize to 448).
    spec = get_extractor("conch-v1.5")
    assert spec.input_size == 224 and spec.resize is None


def test_fixed_size_architecture_at_another_size_is_one_line() -> None:
    spec = replace(get_extractor("h-optimus-0"), name="h-optimus-0-448", input_size=448)
    with pytest.raises(InputError, match=r"takes 224x224 px inputs only.*asks for 448 px"):
        load_extractor(spec, pretrained=False, depth=1)


def test_transformers_vit_at_another_size_is_one_line() -> None:
    pytest.importorskip("transformers")
    spec = replace(get_extractor("phikon"), name="phikon-448", input_size=448)
    with pytest.raises(InputError, match=r"takes 224x224 px inputs only.*asks for 448 px"):
        load_extractor(spec, pretrained=False, depth=1)
