"""Download and Hub streaming end to end against the fake Hub (offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import N
from fake_hub import FakeHub

from plismbench.data import sources
from plismbench.data.catalogue import H5_REPO, TILES_REPO
from plismbench.data.sources import open_source
from plismbench.errors import InputError


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plismbench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _download(env: dict[str, str], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        env, "download", "--download-dir", str(out), "--expect-tiles", str(N), "--workers", "2",
        *extra,
    )  # fmt: skip


def test_download_then_resume(hub_env: dict[str, str], fake_hub: FakeHub, tmp_path: Path) -> None:
    out = tmp_path / "d"
    name = "GIV_S60_to_GMH_S60.tif.h5"
    fake_hub.cut_once.add(name)  # the connection drops half-way through this file
    res = _download(hub_env, out, "--stainings", "GIV", "--scanners", "AT2,S60")
    assert res.returncode == 0, res.stderr
    assert "2/2 h5 files verified" in res.stderr
    src = fake_hub.repos[H5_REPO]
    for f in ("GIV_AT2_to_GMH_S60.tif.h5", name):
        assert (out / f).read_bytes() == (src / f).read_bytes()
    assert not (out / "GM_AT2_to_GMH_S60.tif.h5").exists()
    # huggingface_hub retried the dropped transfer (from the last 10 MB chunk it wrote; here 0).
    assert len(fake_hub.served(name)) == 2

    # A second run (e.g. after an interruption) fetches only what is missing.
    fake_hub.log.clear()
    res = _download(hub_env, out, "--stainings", "GIV,GM", "--scanners", "AT2,S60")
    assert res.returncode == 0, res.stderr
    fetched = {r.path.rsplit("/", 1)[-1] for r in fake_hub.served()}
    assert fetched == {"GM_AT2_to_GMH_S60.tif.h5", "GM_S60_to_GMH_S60.tif.h5"}


def test_download_reports_missing(hub_env: dict[str, str], tmp_path: Path) -> None:
    res = _download(hub_env, tmp_path / "d", "--stainings", "GIV", "--scanners", "AT2,SQ")
    assert res.returncode != 0
    assert "1/2 h5 files verified" in res.stderr
    assert "GIV_SQ_to_GMH_S60.tif.h5" in res.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_download_gated(
    hub_env: dict[str, str], fake_hub: FakeHub, tmp_path: Path, status: int
) -> None:
    fake_hub.gated[H5_REPO] = status
    res = _download(hub_env, tmp_path / "d", "--stainings", "GIV", "--scanners", "AT2")
    assert res.returncode != 0
    assert "https://huggingface.co/datasets/owkin/plism-dataset " in res.stderr
    assert "HF_TOKEN" in res.stderr
    assert "Traceback" not in res.stderr


def test_download_bad_staining(hub_env: dict[str, str], tmp_path: Path) -> None:
    res = _download(hub_env, tmp_path / "d", "--stainings", "NOPE")
    assert res.returncode != 0
    assert "unknown staining 'NOPE'" in res.stderr


def test_streaming_matches_h5(hub_env: dict[str, str], synth_dir: Path) -> None:
    stream = open_source(streaming=True)
    local = open_source(download_dir=synth_dir)
    assert stream.slide_ids() == local.slide_ids()
    for sid in local.slide_ids():
        assert np.array_equal(stream.coords(sid), local.coords(sid))
        a = np.concatenate([b.tiles for b in stream.iter_batches(sid, 2)])
        b = np.concatenate([b.tiles for b in local.iter_batches(sid, 2)])
        assert np.array_equal(a, b)


def test_streaming_resume_skips_done_slides(
    hub_env: dict[str, str], fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = sources.decode_image

    def counting(data: object, *, where: str, name: str) -> np.ndarray:
        decoded.append(name)
        return real(data, where=where, name=name)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "decode_image", counting)
    src = open_source(streaming=True)
    done, todo = src.slide_ids()[:-1], src.slide_ids()[-1]
    for sid in done:  # finished slides: only their coordinates are checked
        src.coords(sid)
    batches = list(src.iter_batches(todo, 2, start=1))
    assert [b.start for b in batches] == [1, 3]
    assert len(decoded) == N - 1
    total = sum(p.stat().st_size for p in fake_hub.repos[TILES_REPO].rglob("*.parquet"))
    served = sum(r.sent for r in fake_hub.served(".parquet"))
    assert served < 0.5 * total, (served, total)


def test_streaming_gated(hub_env: dict[str, str], fake_hub: FakeHub) -> None:
    fake_hub.gated[TILES_REPO] = 401
    with pytest.raises(InputError, match=r"plism-dataset-tiles.*HF_TOKEN"):
        open_source(streaming=True).slide_ids()


def test_streaming_unknown_repo(hub_env: dict[str, str]) -> None:
    with pytest.raises(InputError, match="not found"):
        open_source(streaming=True, repo_id="owkin/nope")
