"""Model weights from the Hub: honest one-line errors (unreachable, gated, offline, missing)."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import torch
from fake_hub import SHA, FakeHub

from plismbench.errors import InputError
from plismbench.extractors.access import check_model_access
from plismbench.extractors.registry import load_extractor


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, no token, offline mode off."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    return cache


def _h0_mini_snapshot(cache: Path) -> None:
    """A depth-2 H0-mini (random weights) in the cache layout huggingface_hub reads."""
    import timm
    from safetensors.torch import save_file

    repo = cache / "models--bioptimus--H0-mini"
    snap = repo / "snapshots" / SHA
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    args = {"img_size": 224, "init_values": 1e-5, "depth": 2, "mlp_ratio": 5.33334}
    config = {"architecture": "vit_base_patch14_reg4_dinov2", "num_classes": 0,
              "model_args": args, "pretrained_cfg": {"input_size": [3, 224, 224]}}  # fmt: skip
    (snap / "config.json").write_text(json.dumps(config))
    net = timm.create_model(
        "vit_base_patch14_reg4_dinov2", num_classes=0, **args,
        mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU,
    )  # fmt: skip
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(snap / "model.safetensors"))


def test_unreachable_hub_is_one_line_without_retries(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING), pytest.raises(InputError) as info:
        load_extractor("h0-mini")
    message = info.value.message
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in message
    assert "not in the local Hugging Face cache" in message
    assert "gated" not in message  # no token and a gated model, but the network is the cause
    assert "Retrying" not in caplog.text
    with pytest.raises(InputError, match="cannot reach the Hub"):
        check_model_access("h0-mini", "bioptimus/H0-mini", True)


def test_cached_model_loads_when_the_hub_is_unreachable(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _h0_mini_snapshot(empty_cache)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    check_model_access("h0-mini", "bioptimus/H0-mini", True)  # cached: nothing to check
    model = load_extractor("h0-mini")
    assert model(torch.zeros(1, 224, 224, 3, dtype=torch.uint8)).shape == (1, 768)
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # restored after the load


def test_offline_mode_and_a_missing_model_is_one_line(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        check_model_access("uni", "MahmoodLab/UNI", True)


@pytest.mark.parametrize("status", [401, 403])
def test_gated_message_only_for_a_real_refusal(
    hub_libs: dict[str, str],
    fake_hub: FakeHub,
    empty_cache: Path,
    tmp_path: Path,
    status: int,
) -> None:
    repo = tmp_path / "uni"
    repo.mkdir()
    (repo / "config.json").write_text("{}")
    fake_hub.repos["MahmoodLab/UNI"] = repo
    fake_hub.gated["MahmoodLab/UNI"] = status
    expected = (
        rf"'uni' is gated \(HTTP {status}\): accept its terms at "
        r"https://huggingface.co/MahmoodLab/UNI and set HF_TOKEN"
    )
    with pytest.raises(InputError, match=expected):
        check_model_access("uni", "MahmoodLab/UNI", True)
    with pytest.raises(InputError, match=expected):
        load_extractor("uni")
    # The same repo, reachable and not gated: the pre-check passes.
    del fake_hub.gated["MahmoodLab/UNI"]
    check_model_access("uni", "MahmoodLab/UNI", True)


def test_missing_repo_is_not_found(hub_libs: dict[str, str], empty_cache: Path) -> None:
    with pytest.raises(InputError, match="was not found on the Hub"):
        check_model_access("x", "nobody/nothing", False)
