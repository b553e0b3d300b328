"""The entries added since the 2025 table, built with random weights: dimension, prefix tokens,
pooling, parameter count, checkpoint keys, and one line for what cannot be built offline."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from plismbench.errors import InputError
from plismbench.extractors import recent
from plismbench.extractors.module import pool_tokens
from plismbench.extractors.recent import RECENT
from plismbench.extractors.registry import get_extractor, list_extractors, load_extractor

TIMM_BUILT = ["genbio-pathfm", "openmidnight", "mettle", "mettle-cls", "mstar", "digepath"]
HUB_CODE = [
    "rudolfv-2", "rudolfv-2-cls", "rudolfv-2-b", "rudolfv-2-b-cls", "rudolfv-2-s",
    "rudolfv-2-s-cls", "mascaret", "phaet", "keep",
]  # fmt: skip
#: Output dimension per the model cards / the authors' code.
CARD_DIMS = {
    "genbio-pathfm": 4608, "rudolfv-2": 3072, "rudolfv-2-b": 1536, "rudolfv-2-s": 768,
    "rudolfv-2-cls": 1536, "rudolfv-2-b-cls": 768, "rudolfv-2-s-cls": 384,
    "openmidnight": 1536, "mascaret": 1536, "phaet": 1024, "mettle": 3072, "mettle-cls": 1536,
    "musk": 1024, "keep": 768, "mstar": 1024, "digepath": 1024,
}  # fmt: skip


def _params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def test_every_new_entry_is_registered_with_the_cards_dimension() -> None:
    names = {s.name for s in list_extractors()}
    assert set(CARD_DIMS) <= names and len(names) >= 36
    for name, dim in CARD_DIMS.items():
        assert get_extractor(name).embed_dim == dim, name
    assert {s.name for s in RECENT} == set(CARD_DIMS)
    assert all(s.pooling_reason for s in RECENT)


@pytest.mark.parametrize("name", TIMM_BUILT)
def test_random_build_output_prefix_and_pooling(name: str) -> None:
    spec = get_extractor(name)
    torch.manual_seed(0)
    model = load_extractor(spec, pretrained=False, depth=1)  # self-check runs inside
    inner = model.backbone.model
    assert inner.num_prefix_tokens == spec.num_prefix_tokens
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        out = model(tiles)
        tokens = model.backbone(model.preprocess(tiles))
    assert out.shape == (2, spec.embed_dim)
    torch.testing.assert_close(out, pool_tokens(tokens, spec.pooling, spec.num_prefix_tokens))


def test_genbio_pathfm_is_three_single_channel_cls_tokens_concatenated() -> None:
    spec = get_extractor("genbio-pathfm")
    assert (spec.mean, spec.std) == ((0.697, 0.575, 0.728), (0.188, 0.240, 0.187))
    assert spec.dtype == "fp32" and spec.resize is None and spec.input_size == 224
    torch.manual_seed(0)
    model = load_extractor(spec, pretrained=False, depth=1)
    inner = model.backbone.model
    assert inner.patch_embed.proj.in_channels == 1
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        out = model(tiles)
        x = model.preprocess(tiles)
        per_channel = [inner.forward_features(x[:, c : c + 1])[:, 0] for c in range(3)]
    torch.testing.assert_close(out, torch.cat(per_channel, dim=1))


def test_genbio_pathfm_parameter_count_is_the_authors_architecture() -> None:
    """Counted on the meta device, against the authors' ViT written out by hand."""
    with torch.device("meta"):
        backbone = recent.genbio_loader(get_extractor("genbio-pathfm"), pretrained=False)
    d, hidden = 1536, 4096  # SwiGLU hidden: int(4 * 1536 * 2 / 3) aligned to 64
    block = 3 * d * d + d * d + d + 2 * (d * hidden + hidden) + hidden * d + d + 4 * d + 2 * d
    authors = 40 * block + (d * 16 * 16 + d) + d + 4 * d + 2 * d  # patch, cls, storage, norm
    count = sum(p.numel() for p in backbone.parameters())
    assert count == authors
    assert count / 1e6 == pytest.approx(get_extractor("genbio-pathfm").params_m, rel=1e-3)


@pytest.mark.parametrize("name", ["openmidnight", "mettle", "mstar", "digepath"])
def test_parameter_count_matches_the_declared_one(name: str) -> None:
    spec = get_extractor(name)
    with torch.device("meta"):
        backbone = spec.loader(spec, pretrained=False)
    assert _params_m(backbone) == pytest.approx(spec.params_m, rel=0.01)


def _dinov3_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Eva keys back to the authors' DINOv3 names (the inverse of the conversion)."""
    out = {}
    for key, value in state.items():
        key = key.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        key = key.replace("reg_token", "storage_tokens").replace("mlp.fc1_g", "mlp.w1")
        key = key.replace("mlp.fc1_x", "mlp.w2").replace("mlp.fc2", "mlp.w3")
        out[key] = value
    out["rope_embed.periods"] = torch.ones(16)
    out["mask_token"] = torch.zeros(1, 1536)
    return out


def _fake_hub_file(root: Path, hub_id: str, name: str, payload: object) -> None:
    """A Hugging Face cache snapshot holding one file (the tests' offline Hub)."""
    repo = root / f"models--{hub_id.replace('/', '--')}"
    sha = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True)
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in payload.items()}, str(snap / name))  # type: ignore[attr-defined]
    else:
        torch.save(payload, snap / name)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def _extract_demo(spec, tmp_path: Path) -> dict:
    """``extract`` on synthetic demo tiles; returns the slide's meta.json."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "extraction"))
    from extract_memsource import MemorySource

    from plismbench.extraction import extract

    result = extract(spec, MemorySource(n_slides=1, n_tiles=2, size=224), tmp_path / "f",
                     workers=0, batch_size=2)  # fmt: skip
    assert result.slides_done == ["SLIDE00"]
    return json.loads((tmp_path / "f" / spec.folder / "SLIDE00" / "meta.json").read_text())


def test_genbio_pathfm_loads_the_authors_checkpoint_layout(
    tmp_path: Path, offline_hub: Path
) -> None:
    """model.pth in the authors' DINOv3 key names -> timm Eva, strict, then extract."""
    spec = get_extractor("genbio-pathfm")
    small = replace(spec, name="genbio-pathfm-test", timm=replace(spec.timm, depth=1))
    torch.manual_seed(1)
    reference = load_extractor(small, pretrained=False)
    state = _dinov3_layout(reference.backbone.model.state_dict())
    _fake_hub_file(offline_hub, spec.hub_id, "model.pth", state)
    loaded = load_extractor(small)  # the Hub path: hf_hub_download -> convert -> strict load
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(tiles), reference(tiles))
    meta = _extract_demo(small, tmp_path)
    assert meta["embed_dim"] == 4608 and meta["precision"] == "fp32"


def test_openmidnight_loads_a_dinov2_hub_checkpoint(tmp_path: Path, offline_hub: Path) -> None:
    spec = get_extractor("openmidnight")
    small = replace(spec, name="openmidnight-test", timm=replace(spec.timm, depth=1))
    torch.manual_seed(2)
    reference = load_extractor(small, pretrained=False)
    state = {}
    for key, value in reference.backbone.model.state_dict().items():
        key = key.replace("reg_token", "register_tokens")
        state[key.replace("mlp.fc1.", "mlp.w12.").replace("mlp.fc2.", "mlp.w3.")] = value
    state["mask_token"] = torch.zeros(1, 1536)
    _fake_hub_file(offline_hub, spec.hub_id, spec.weights_file, state)
    loaded = load_extractor(small)
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(tiles), reference(tiles))
    assert _extract_demo(small, tmp_path)["embed_dim"] == 1536


def test_mettle_head_refines_only_the_cls_and_loads_backbone_and_head(
    tmp_path: Path, offline_hub: Path
) -> None:
    spec = get_extractor("mettle")
    small = replace(spec, name="mettle-test", timm=replace(spec.timm, depth=1))
    torch.manual_seed(3)
    reference = load_extractor(small, pretrained=False)
    with torch.no_grad():  # a non-trivial head (its random init is zero in P and Q)
        for p in reference.backbone.head.parameters():
            p.normal_(0, 0.02)
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.inference_mode():
        x = reference.preprocess(tiles)
        tokens = reference.backbone.model.forward_features(x)
        headed = reference.backbone.head(tokens[:, 0])
        out = reference(tiles)
    torch.testing.assert_close(out[:, :1536], headed)  # headed CLS ...
    torch.testing.assert_close(out[:, 1536:], tokens[:, 5:].mean(1))  # ... + unheaded mean
    state = {f"backbone.{k}": v for k, v in reference.backbone.model.state_dict().items()}
    state |= {f"head.{k}": v for k, v in reference.backbone.head.state_dict().items()}
    _fake_hub_file(offline_hub, spec.hub_id, spec.weights_file, state)
    loaded = load_extractor(small)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(tiles), out)
    assert _extract_demo(small, tmp_path)["embed_dim"] == 3072


@pytest.mark.parametrize("name", HUB_CODE)
def test_hub_code_entries_say_they_have_no_random_build(name: str) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(InputError, match="uses Hub code and has no random build"):
        load_extractor(name, pretrained=False, depth=1)


@pytest.mark.parametrize("name", [*HUB_CODE[:1], "musk"])
def test_missing_optional_package_is_one_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_extractor(name)
    module, hint = spec.requires[0]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(InputError, match=f"needs the optional package '{module}'") as info:
        load_extractor(spec, pretrained=False)
    assert hint in str(info.value)


def test_rudolfv2_family_follows_the_card() -> None:
    for name in ("rudolfv-2", "rudolfv-2-b", "rudolfv-2-s"):
        spec = get_extractor(name)
        assert spec.pooling == "cls+mean" and spec.num_prefix_tokens == 9  # CLS + 8 registers
        assert spec.mean == (0.7072, 0.5787, 0.7036) and spec.dtype == "fp32"
        assert "no-replicating-training" in spec.licence_restrictions
        cls = get_extractor(f"{name}-cls")
        assert cls.pooling == "cls" and cls.embed_dim * 2 == spec.embed_dim


def test_musk_runs_at_384_px() -> None:
    spec = get_extractor("musk")
    assert (spec.input_size, spec.resize, spec.mean) == (384, 384, (0.5, 0.5, 0.5))
