"""Fixtures for the data tests: a tiny synthetic PLISM and a fake Hub serving it."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_hub import FakeHub

from plismbench.data.catalogue import H5_REPO, TILES_REPO
from plismbench.data.synth import synth

#: The tiny synthetic PLISM: 2 stainings x 2 scanners x 5 tiles of 224 px.
STAININGS = ("GIV", "GM")
SCANNERS = ("AT2", "S60")
N = 5


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """h5, parquet and folder formats of the same tiny synthetic PLISM."""
    out = tmp_path_factory.mktemp("synth")
    return synth(
        out, n_tiles=N, stainings=STAININGS, scanners=SCANNERS, formats=("h5", "parquet", "folder")
    )


@pytest.fixture(scope="session")
def hub_repos(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders laid out like the two Hub repos."""
    root = tmp_path_factory.mktemp("hub")
    h5 = root / "h5"
    h5.mkdir()
    for path in synth_dir.glob("*.h5"):
        shutil.copy(path, h5 / path.name)
    (h5 / "README.md").write_text("fake plism-dataset\n")
    tiles = root / "tiles"
    shutil.copytree(synth_dir / "parquet", tiles)
    (tiles / "README.md").write_text("fake plism-dataset-tiles\n")
    return {H5_REPO: h5, TILES_REPO: tiles}


@pytest.fixture
def fake_hub(hub_repos: dict[str, Path]) -> Iterator[FakeHub]:
    """A fake Hub on 127.0.0.1 serving the synthetic repos."""
    hub = FakeHub(dict(hub_repos)).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def hub_env(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing huggingface_hub at the fake Hub, with caches in tmp.

    Set in this process (for code that reads ``HF_ENDPOINT`` at call time) and returned for
    subprocesses, where it applies before huggingface_hub is imported.
    """
    env = {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_CACHE": str(tmp_path / "hf_home" / "hub"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf_home" / "datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    return {**os.environ, **env}


@pytest.fixture
def hub_libs(hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``hub_env``, and huggingface_hub / datasets pointed at this test's fake Hub in-process.

    Both libraries read ``HF_ENDPOINT`` and their cache folders once, at import, and the fake
    Hub has a new port per test: their copies are patched here so that streaming with
    ``datasets`` can run in the test process. (test_streaming_uses_datasets streams in a fresh
    process instead, where the environment applies before the import.)
    """
    import datasets.config
    from huggingface_hub import constants

    url = hub_env["HF_ENDPOINT"]
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", hub_env["HF_HUB_CACHE"])
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(
        datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(hub_env["HF_DATASETS_CACHE"]))
    return hub_env
