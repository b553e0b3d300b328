"""SCORPION: the synthetic demo, its layout check and source, and the Zenodo download."""

from __future__ import annotations

import io
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fake_zenodo import FakeZenodo, serve
from typer.testing import CliRunner

from plismbench.cli.app import app
from plismbench.data import scorpion
from plismbench.data.datasets.builtin import SCORPION, SCORPION_RECORD, SCORPION_SCANNERS
from plismbench.errors import InputError

SLIDES, SAMPLES = 2, 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scorpion.synth(
        tmp_path_factory.mktemp("scorpion"), n_slides=SLIDES, samples_per_slide=SAMPLES
    )


@pytest.fixture(scope="module")
def archive(demo: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(demo.rglob("*.jpg")):
            z.write(path, Path("SCORPION") / path.relative_to(demo))
    return buf.getvalue()


def test_synth_layout_and_source(demo: Path) -> None:
    files = sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*.jpg"))
    assert len(files) == SLIDES * SAMPLES * 5
    assert files[0] == "slide_0/sample_0/AT2.jpg"
    assert scorpion.verify(demo, SLIDES * SAMPLES).startswith("6 samples x 5 scanners")
    src = scorpion.source(demo)
    assert src.slide_ids() == [f"SCORPION_{s}" for s in sorted(SCORPION_SCANNERS)]
    batches = list(src.iter_batches("SCORPION_GT450", batch_size=4))
    tiles = np.concatenate([b.tiles for b in batches])
    assert tiles.shape == (6, 224, 224, 3) and tiles.dtype == np.uint8
    assert src.coords("SCORPION_GT450")[:, 1].tolist() == list(range(6))
    # The same sample under two scanners is closer than two samples under one scanner.
    at2 = np.concatenate([b.tiles for b in src.iter_batches("SCORPION_AT2", 6)]).astype(float)
    same = np.abs(at2 - tiles).mean(axis=(1, 2, 3))
    other = np.abs(at2 - np.roll(tiles, 1, axis=0)).mean(axis=(1, 2, 3))
    assert (same < other).all()
    # Same seed, same bytes.
    again = scorpion.synth(demo.parent / "again", n_slides=SLIDES, samples_per_slide=SAMPLES)
    assert (again / files[7]).read_bytes() == (demo / files[7]).read_bytes()


def test_centre_crop_and_missing_scanner(demo: Path, tmp_path: Path) -> None:
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    assert np.array_equal(scorpion.centre_crop(image, 4, where="x"), image[3:7, 4:8])
    with pytest.raises(InputError, match="smaller than the 224 px tile"):
        scorpion.centre_crop(image, 224, where="x")
    broken = tmp_path / "broken" / "slide_0" / "sample_0"
    broken.mkdir(parents=True)
    (broken / "AT2.jpg").write_bytes((demo / "slide_0/sample_0/AT2.jpg").read_bytes())
    with pytest.raises(InputError, match="no image for scanner DP200"):
        scorpion.index(tmp_path / "broken")


def _env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ZENODO_URL", url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_download_resume_verify(archive: bytes, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeZenodo({SCORPION_RECORD: {"scorpion.zip": archive}}, cut_after=len(archive) // 3)
    with serve(fake):
        _env(monkeypatch, fake.url)
        with pytest.raises(InputError, match=r"interrupted after .* run the same command") as e:
            scorpion.download(tmp_path, SLIDES * SAMPLES)
        assert "\n" not in e.value.message
        part = tmp_path / "scorpion.zip.part"
        assert part.stat().st_size == len(archive) // 3 and not (tmp_path / "scorpion.zip").exists()
        line = scorpion.download(tmp_path, SLIDES * SAMPLES)
    assert fake.ranges == [None, f"bytes={len(archive) // 3}-"]  # resumed, not restarted
    assert line.startswith("6 samples x 5 scanners verified")
    assert (tmp_path / "scorpion.zip").read_bytes() == archive and not part.exists()
    # A second run is offline: nothing is fetched once the files are verified... except the
    # listing, which needs the network; a dead server gives one line.
    _env(monkeypatch, "http://127.0.0.1:9")
    with pytest.raises(InputError, match="cannot reach"):
        scorpion.download(tmp_path, SLIDES * SAMPLES)


def test_download_checksum_mismatch(archive: bytes, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeZenodo({SCORPION_RECORD: {"scorpion.zip": archive}}, bad_checksum={"scorpion.zip"})
    with serve(fake):
        _env(monkeypatch, fake.url)
        with pytest.raises(InputError, match="checksum mismatch") as e:
            scorpion.download(tmp_path)
    assert "\n" not in e.value.message
    assert not list(tmp_path.glob("scorpion.zip*")) and not list(tmp_path.glob("*/slide_*"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_download_offline_404_no_network(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    args = ["download", "--dataset", "scorpion", "--download-dir", str(tmp_path)]
    fake = FakeZenodo({"other": {}})
    with serve(fake):
        _env(monkeypatch, fake.url)
        result = runner.invoke(app, args)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "HTTP 404" in lines[0], result.output
    _env(monkeypatch, f"http://127.0.0.1:{_closed_port()}")
    result = runner.invoke(app, args)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "cannot reach" in lines[0], result.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, args)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0], result.output


def test_cli_synth_scorpion(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--dataset", "scorpion", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert scorpion.verify(tmp_path, None).startswith("24 samples x 5 scanners")
    assert SCORPION.geometry.crop == "centre"
