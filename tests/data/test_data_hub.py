"""Download and Hub streaming end to end against the fake Hub (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import N
from fake_hub import SHA, FakeHub

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
    recorded = json.loads((out / ".plism-revision.json").read_text())  # the dataset commit
    assert recorded["repo_id"] == H5_REPO and recorded["revision"]
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


def _stream(
    env: dict[str, str], repo_id: str, h5_dir: Path, start: int = 0, *slides: str
) -> dict[str, Any]:
    """Stream in a fresh process (see stream_run.py); its JSON report."""
    script = Path(__file__).with_name("stream_run.py")
    res = subprocess.run(
        [sys.executable, str(script), repo_id, str(h5_dir), str(start), *slides],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    report: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return report


def test_streaming_matches_h5(hub_libs: dict[str, str], synth_dir: Path) -> None:
    stream = open_source(streaming=True)
    local = open_source(download_dir=synth_dir)
    assert stream.slide_ids() == local.slide_ids()
    for sid in local.slide_ids():
        assert np.array_equal(stream.coords(sid), local.coords(sid))
        a = np.concatenate([b.tiles for b in stream.iter_batches(sid, 2)])
        b = np.concatenate([b.tiles for b in local.iter_batches(sid, 2)])
        assert np.array_equal(a, b)
        tail = list(stream.iter_batches(sid, 3, start=2))
        assert [t.start for t in tail] == [2] and np.array_equal(tail[0].tiles, a[2:])
        assert list(stream.iter_batches(sid, 2, start=N)) == []


def test_streaming_resume_skips_done_slides(
    hub_libs: dict[str, str], fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real = sources.decode_image

    def counting(data: object, *, where: str, name: str) -> np.ndarray:
        decoded.append(name)
        return real(data, where=where, name=name)  # type: ignore[arg-type]

    from plismbench.data.sources import streaming

    monkeypatch.setattr(streaming, "decode_image", counting)
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


SHARDED = "owkin/plism-sharded"


def _sharded_repo(synth_dir: Path, root: Path) -> list[str]:
    """The synthetic parquet as two shards of two slides; shard 1 stores rows in reverse."""
    table = pq.read_table(next((synth_dir / "parquet").rglob("*.parquet")))
    slides = sorted(set(table.column("slide_id").to_pylist()))
    files = []
    for k, shard in enumerate((slides[:2], slides[2:])):
        name = f"data/train-{k:05d}-of-00002.parquet"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(root / name, table.schema) as writer:
            for sid in shard:
                rows = table.filter(pc.equal(table.column("slide_id"), sid))
                if k == 1:
                    rows = rows.take(list(range(rows.num_rows - 1, -1, -1)))
                writer.write_table(rows, row_group_size=3)
        files.append(name)
    (root / "README.md").write_text("fake sharded tiles\n")
    return files


def test_streaming_uses_datasets(
    hub_env: dict[str, str], fake_hub: FakeHub, synth_dir: Path, tmp_path: Path
) -> None:
    shards = _sharded_repo(synth_dir, tmp_path / "sharded")
    fake_hub.repos[SHARDED] = tmp_path / "sharded"
    report = _stream(hub_env, SHARDED, synth_dir, 0)  # the last slide, in shard 1
    todo = report["slide_ids"][-1]
    assert report["equal"] == {todo: True}  # rows stored in reverse, tiles in canonical order
    assert report["starts"] == {todo: [0, 2, 4]} and len(report["decoded"]) == N
    # The tiles were streamed by datasets.load_dataset, from the one shard holding the slide.
    [call] = report["calls"]
    assert call["path"] == SHARDED and call["args"] == []
    assert call["split"] == "'train'" and call["streaming"] == "True"
    assert call["revision"] == repr(SHA)
    assert call["data_files"] == shards[1:]
    assert repr(("slide_id", "==", todo)) in call["filters"]  # pushed down to the reader
    # datasets resolved the repo and the shard itself (README, tree of data/), and shard 0,
    # which holds no unfinished slide, was read only for its index (footer, id columns).
    paths = [r.path for r in fake_hub.log]
    assert f"/datasets/{SHARDED}/resolve/{SHA}/README.md" in paths
    assert f"/api/datasets/{SHARDED}/tree/{SHA}/data" in paths
    size0 = (tmp_path / "sharded" / shards[0]).stat().st_size
    served0 = sum(r.sent for r in fake_hub.served(shards[0]))
    assert served0 < 0.5 * size0, (served0, size0)
    assert sum(r.sent for r in fake_hub.served(shards[1])) > 0


def test_streaming_gated(hub_env: dict[str, str], fake_hub: FakeHub) -> None:
    fake_hub.gated[TILES_REPO] = 401
    with pytest.raises(InputError, match=r"plism-dataset-tiles.*HF_TOKEN"):
        open_source(streaming=True).slide_ids()


def test_streaming_unknown_repo(hub_env: dict[str, str]) -> None:
    with pytest.raises(InputError, match="not found"):
        open_source(streaming=True, repo_id="owkin/nope")


def _download_here(out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    """``plismbench download`` in this process (the checks read the environment at call time)."""
    import huggingface_hub.constants  # noqa: F401  (reads the environment once, at import)
    from typer.testing import CliRunner

    from plismbench.cli import app

    args = ["download", "--download-dir", str(out), "--expect-tiles", str(N), *extra]
    return CliRunner(env=env).invoke(app, args)


def test_download_offline_or_unwritable_is_one_line(
    hub_env: dict[str, str], tmp_path: Path
) -> None:
    res = _download_here(tmp_path / "d", "--stainings", "GIV", env={"HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 2, res.output
    assert "HF_HUB_OFFLINE is set" in res.output
    (tmp_path / "file").write_text("x")
    for bad in ("/proc/x", str(tmp_path / "file" / "sub")):
        res = _download_here(Path(bad), "--stainings", "GIV")
        assert res.exit_code == 2, res.output
        assert "--download-dir" in res.output


def test_download_unreachable_hub_is_one_line(
    hub_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = _download_here(
        tmp_path / "d", "--stainings", "GIV", env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    )
    assert res.exit_code == 2, res.output
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in res.output
    assert "Retrying" not in caplog.text


def test_download_of_complete_files_needs_no_network(
    hub_env: dict[str, str], synth_dir: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "d"
    out.mkdir()
    for name in ("GIV_AT2_to_GMH_S60.tif.h5", "GIV_S60_to_GMH_S60.tif.h5"):
        shutil.copy(synth_dir / name, out / name)
    res = _download_here(
        out, "--stainings", "GIV", "--scanners", "AT2,S60", env={"HF_HUB_OFFLINE": "1"}
    )
    assert res.exit_code == 0, res.output
    assert "2/2 h5 files verified" in res.output
