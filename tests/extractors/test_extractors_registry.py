"""Registry: names, suggestions, plugins, local exports, --weights, offline Hub, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.errors import InputError
from plismbench.extractors import registry
from plismbench.extractors.registry import (
    ExtractorSpec,
    get_extractor,
    list_extractors,
    load_extractor,
    register_extractor,
    unregister_extractor,
)

BIOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
BIOPTIMUS_STD = (0.211883, 0.230117, 0.177517)


class _Mean(torch.nn.Module):
    """Global colour mean: (B, 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def _mean_loader(spec, *, pretrained: bool, **overrides):
    return _Mean()


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("h0-mini", "h0-mini"),
        ("h0_mini", "h0-mini"),
        ("H0-MINI", "h0-mini"),
        ("hoptimus0", "h-optimus-0"),
        ("H_optimus_1", "h-optimus-1"),
        ("uni2h", "uni2-h"),
        ("phikonv2", "phikon-v2"),
        ("kaiko_vit_base", "kaiko-vit-b8"),
        ("midnight_12k", "midnight-12k"),
        ("conchv15", "conch-v1.5"),
        ("dinov2_vit_giant_imagenet", "dinov2-vit-g14"),
        ("hed_histogram", "hed-histogram"),
        ("hf-hub:bioptimus/H0-mini", "h0-mini"),
    ],
)
def test_name_folding_and_aliases(name: str, canonical: str) -> None:
    assert get_extractor(name).name == canonical


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(InputError, match=r"unknown model 'h0-mni'; did you mean 'h0-mini'"):
        get_extractor("h0-mni")
    with pytest.raises(InputError, match="'virchow2'"):
        get_extractor("virchw2")


def test_register_by_call_and_decorator_then_extract(tmp_path: Path) -> None:
    from plismbench.extraction.engine import extract

    sys.path.insert(0, str(Path(__file__).parents[1] / "extraction"))
    from extract_memsource import MemorySource

    register_extractor(
        name="My-Mean", loader=_mean_loader, embed_dim=3, pooling="model", aliases=["mymean2"]
    )

    @register_extractor(name="decorated", embed_dim=3, pooling="model", normalise=False)
    def build(spec, *, pretrained: bool, **overrides):
        return _Mean()

    try:
        assert get_extractor("my_mean").name == "My-Mean"
        assert get_extractor("MYMEAN2").name == "My-Mean"
        assert {"My-Mean", "decorated"} <= {s.name for s in list_extractors()}
        with pytest.raises(InputError, match="already registered"):
            register_extractor(name="my-mean", loader=_mean_loader, embed_dim=4, pooling="model")
        result = extract("decorated", MemorySource(n_slides=1, n_tiles=3), tmp_path)
        feats = np.load(tmp_path / "decorated" / "SLIDE00" / "features.npy")
        assert feats.shape == (3, 6) and result.tiles == 3
        assert feats[:, 3:].max() > 1  # raw 0-255 means: no normalisation
    finally:
        unregister_extractor("my-mean")
        unregister_extractor("decorated")
    with pytest.raises(InputError):
        get_extractor("my-mean")


def test_self_check_catches_a_wrong_dimension() -> None:
    spec = ExtractorSpec(name="wrong-dim", loader=_mean_loader, embed_dim=5, pooling="model")
    with pytest.raises(InputError, match=r"wrong-dim.*\(3,\).*declares \(5,\)"):
        load_extractor(spec)


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pbplugin_demo.py").write_text(
        textwrap.dedent(
            """
            import torch
            from plismbench.extractors import ExtractorSpec

            class Grey(torch.nn.Module):
                def forward(self, x):
                    return x.mean(dim=(1, 2, 3))[:, None]

            SPEC = ExtractorSpec(name="grey-plugin", loader=lambda spec, **kw: Grey(),
                                 embed_dim=1, pooling="model")
            """
        )
    )
    dist = tmp_path / "pbplugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pbplugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[plismbench.extractors]\ngrey = pbplugin_demo:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(force=True)
    try:
        spec = get_extractor("grey_plugin")
        out = load_extractor(spec)(torch.zeros(2, 224, 224, 3, dtype=torch.uint8))
        assert out.shape == (2, 1)
    finally:
        unregister_extractor("grey-plugin")


def test_cli_plugin_and_models_json(tmp_path: Path) -> None:
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import torch
            from plismbench import register_extractor

            @register_extractor(name="cli-mean", embed_dim=3, pooling="model")
            def build(spec, *, pretrained, **overrides):
                class M(torch.nn.Module):
                    def forward(self, x):
                        return x.mean(dim=(2, 3))
                return M()
            """
        )
    )
    runner = CliRunner()
    res = runner.invoke(app, ["models", "--json", "--plugin", str(plugin)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["cli-mean"]["embed_dim"] == 3
    assert by_name["h0-mini"]["embed_dim"] == 768 and "aliases" in by_name["h0-mini"]
    assert by_name["h0-mini"]["hub_id"] == "bioptimus/H0-mini" and by_name["h0-mini"]["gated"]
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0 and "h0-mini" in res.stdout
    h0_row = next(line for line in res.stdout.splitlines() if " h0-mini " in line)
    assert "bioptimus/H0-mini" in h0_row and "accept terms" in h0_row  # Hub id and gating
    unregister_extractor("cli-mean")


def test_cli_extract_from_synthetic_h5(tmp_path: Path) -> None:
    from plismbench.data.synth import synth

    data = synth(tmp_path / "plism", n_tiles=4, stainings=["GIV"], scanners=["AT2", "S60"])
    runner = CliRunner()
    args = ["extract", "--extractor", "rgb_histogram", "--download-dir", str(data),
            "--out-dir", str(tmp_path / "out"), "-b", "3", "--device", "cpu"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    slides = sorted(p.name for p in (tmp_path / "out" / "rgb-histogram").iterdir() if p.is_dir())
    assert len(slides) == 2
    feats = np.load(tmp_path / "out" / "rgb-histogram" / slides[0] / "features.npy")
    assert feats.shape == (4, 99)
    res = runner.invoke(app, ["extract", "--model", "h0-mni", "--download-dir", str(data),
                              "--out-dir", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "did you mean 'h0-mini'" in res.output
    res = runner.invoke(app, ["extract", "--model", "uni", "--out-dir", str(tmp_path / "x")])
    assert res.exit_code == 2 and "exactly one tile source" in res.output


def _timm_config(depth: int) -> dict:
    return {
        "architecture": "vit_base_patch14_reg4_dinov2",
        "num_classes": 0,
        "num_features": 768,
        "global_pool": "",
        "model_args": {
            "img_size": 224,
            "init_values": 1e-5,
            "depth": depth,
            "global_pool": "",
            "mlp_ratio": 5.33334,
        },
        "pretrained_cfg": {
            "input_size": [3, 224, 224],
            "interpolation": "bicubic",
            "mean": list(BIOPTIMUS_MEAN),
            "std": list(BIOPTIMUS_STD),
            "num_classes": 0,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
    }


def _random_h0_mini(depth: int) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(
        "vit_base_patch14_reg4_dinov2",
        img_size=224,
        init_values=1e-5,
        depth=depth,
        num_classes=0,
        global_pool="",
        mlp_ratio=5.33334,
        mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=torch.nn.SiLU,
    ).eval()


def test_local_export_dir_and_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = _random_h0_mini(depth=2)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    export = tmp_path / "student"
    export.mkdir()
    config = _timm_config(depth=2)
    config["plismbench"] = {"mlp_layer": "SwiGLUPacked", "act_layer": "silu", "pooling": "cls"}
    (export / "config.json").write_text(json.dumps(config))
    save_file(state, str(export / "model.safetensors"))

    spec = get_extractor(str(export))
    assert spec.name == "student" and spec.embed_dim == 768 and spec.num_prefix_tokens == 5
    model = load_extractor(str(export))
    tiles = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    x = (
        tiles.permute(0, 3, 1, 2).float() / 255 - torch.tensor(BIOPTIMUS_MEAN).view(1, 3, 1, 1)
    ) / (torch.tensor(BIOPTIMUS_STD).view(1, 3, 1, 1))
    with torch.inference_mode():
        direct = net(x)[:, 0]
        torch.testing.assert_close(model(tiles), direct, atol=1e-4, rtol=1e-4)
        # --weights: the same file loaded into the registry architecture (depth override).
        loaded = load_extractor("h0-mini", weights=export / "model.safetensors", depth=2)
        torch.testing.assert_close(loaded(tiles), direct, atol=1e-4, rtol=1e-4)
    assert loaded.weights_sha256() == model.weights_sha256()
    with pytest.raises(InputError, match="do not fit model 'h0-mini'"):
        load_extractor("h0-mini", weights=export / "model.safetensors", depth=3)
    with pytest.raises(InputError, match=r"no config\.json"):
        get_extractor(str(tmp_path))


_OFFLINE_SCRIPT = r"""
import json, sys, torch
import timm
from plismbench.errors import InputError
from plismbench.extractors import load_extractor

out = {}
model = load_extractor("h0-mini")
direct = timm.create_model("hf-hub:bioptimus/H0-mini", pretrained=True,
                           mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU).eval()
g = torch.Generator().manual_seed(1)
tiles = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8, generator=g)
mean = torch.tensor(direct.pretrained_cfg["mean"]).view(1, 3, 1, 1)
std = torch.tensor(direct.pretrained_cfg["std"]).view(1, 3, 1, 1)
x = (tiles.permute(0, 3, 1, 2).float() / 255 - mean) / std
with torch.inference_mode():
    ref = direct(x)
    got = model(tiles)
    both = load_extractor("h0-mini-cls-mean")(tiles)
pre = direct.num_prefix_tokens
out["cls_diff"] = float((got - ref[:, 0]).abs().max())
out["cls_mean_diff"] = float((both - torch.cat([ref[:, 0], ref[:, pre:].mean(1)], 1)).abs().max())
out["shape"] = list(got.shape)
out["prefix"] = pre
try:
    load_extractor("uni")
except InputError as exc:
    out["gated"] = exc.message
print(json.dumps(out))
"""


def test_h0_mini_through_the_real_hf_hub_path_offline(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    hf_home = tmp_path / "hf"
    repo = hf_home / "hub" / "models--bioptimus--H0-mini"
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    (snap / "config.json").write_text(json.dumps(_timm_config(depth=2)))
    net = _random_h0_mini(depth=2)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(snap / "model.safetensors")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_HOME=str(hf_home),
        HF_HUB_CACHE=str(hf_home / "hub"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="2",
    )
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["shape"] == [3, 768] and out["prefix"] == 5
    assert out["cls_diff"] < 1e-5 and out["cls_mean_diff"] < 1e-5
    assert "https://huggingface.co/MahmoodLab/UNI" in out["gated"] and "HF_TOKEN" in out["gated"]


#: Folder names of owkin/plism-benchmark's feature exports: each must resolve to our entry
#: (through the entries' own aliases and the folding of ``-``, ``_`` and ``.``).
REFERENCE_FOLDERS = {
    "h0_mini": "h0-mini", "hoptimus0": "h-optimus-0", "hoptimus1": "h-optimus-1",
    "uni2h": "uni2-h", "provgigapath": "prov-gigapath", "conchv15": "conch-v1.5",
    "hibou_base": "hibou-b", "hibou_large": "hibou-l", "phikonv2": "phikon-v2",
    "kaiko_vit_base": "kaiko-vit-b8", "kaiko_vit_large": "kaiko-vit-l14",
    "midnight_12k": "midnight-12k", "lunit_vit_small_8": "lunit-vit-s8",
    "dinov2_vit_giant_imagenet": "dinov2-vit-g14",
}  # fmt: skip


@pytest.mark.parametrize(("folder", "name"), sorted(REFERENCE_FOLDERS.items()))
def test_reference_folder_names_resolve(folder: str, name: str) -> None:
    from plismbench.extractors.registry import get_extractor

    assert get_extractor(folder).name == name
