"""Slide claims: live holders are respected; dead ones (here, or silent elsewhere) are taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from waiting import wait_until

from plismbench.extraction.claims import CLAIM, Claims


def _plant(slide: Path, pid: int, host: str, age_s: float = 0.0) -> Path:
    slide.mkdir(parents=True, exist_ok=True)
    path = slide / CLAIM
    path.write_text(json.dumps({"pid": pid, "host": host, "time": time.time() - age_s}))
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_live_claims_are_respected_and_dead_ones_taken(tmp_path: Path) -> None:
    claims = Claims(stale_after_s=60)
    try:
        # A live process on this host (the test runner's parent) holds the slide.
        live = _plant(tmp_path / "a", os.getppid(), socket.gethostname())
        assert claims.holder(tmp_path / "a") == f"pid {os.getppid()} on host {socket.gethostname()}"
        assert not claims.take(tmp_path / "a") and live.exists()
        # A dead process on this host: broken at once.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        _plant(tmp_path / "b", int(dead.stdout), socket.gethostname())
        assert claims.holder(tmp_path / "b") is None and claims.take(tmp_path / "b")
        # Another host: trusted while its heartbeat is fresh, taken once it is stale.
        _plant(tmp_path / "c", 1, "elsewhere")
        assert claims.holder(tmp_path / "c") == "pid 1 on host elsewhere"
        assert not claims.take(tmp_path / "c")
        _plant(tmp_path / "c", 1, "elsewhere", age_s=120)
        assert claims.holder(tmp_path / "c") is None and claims.take(tmp_path / "c")
        owner = json.loads((tmp_path / "c" / CLAIM).read_text())
        assert owner["pid"] == os.getpid()
    finally:
        claims.close()
    assert not (tmp_path / "b" / CLAIM).exists() and not (tmp_path / "c" / CLAIM).exists()


def test_heartbeat_keeps_a_held_claim_fresh(tmp_path: Path) -> None:
    claims = Claims(stale_after_s=2)  # heartbeat every 0.5 s
    try:
        assert claims.take(tmp_path / "s")
        path = tmp_path / "s" / CLAIM
        os.utime(path, (time.time() - 100, time.time() - 100))
        wait_until(lambda: time.time() - path.stat().st_mtime <= 50,
                   "the heartbeat refreshes the claim", guard_s=30)  # fmt: skip
    finally:
        claims.close()
    assert not path.exists()


def test_slides_held_by_a_live_process_are_left_or_waited_for(tmp_path: Path) -> None:
    import threading

    sys.path.insert(0, str(Path(__file__).parent))
    from extract_memsource import MemorySource

    from plismbench.extraction import extract

    source = MemorySource(n_slides=3, n_tiles=2, size=16)
    held = _plant(tmp_path / "rgb-histogram" / "SLIDE01", os.getppid(), socket.gethostname())
    left = extract("rgb-histogram", source, tmp_path, workers=0, wait=False)
    assert left.slides_done == ["SLIDE00", "SLIDE02"] and left.slides_elsewhere == ["SLIDE01"]
    assert held.exists() and not (held.parent / "features.npy").exists()
    # Waiting: the slide is taken as soon as its holder lets it go.
    release = threading.Timer(0.5, held.unlink)
    release.start()
    waited = extract("rgb-histogram", source, tmp_path, workers=0, poll_s=0.1)
    release.join()
    assert waited.slides_done == ["SLIDE01"] and waited.slides_elsewhere == []
    assert waited.slides_skipped == ["SLIDE00", "SLIDE02"]
