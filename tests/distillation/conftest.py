"""Shared fixtures: a small folder of real H&E tiles (synth from the CC0 asset)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def he_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/tiles/<slide>/<tile>.png``: 2 slides x 16 real H&E tiles of 224 px."""
    from plismbench.data.synth import synth

    root = tmp_path_factory.mktemp("he")
    synth(root, n_tiles=16, stainings=["GIV"], scanners=["AT2", "GT450"], formats=["folder"])
    return root / "tiles"
