"""A small but realistic evaluation to report on: PLISM names, three models.

``good`` and ``hed-histogram`` cover all 7 scanners and 4 stainings (full 7 x 7 scanner
heatmaps); ``partial`` has only 2 stainings x 2 scanners (smaller heatmaps). ``good``
carries extractor ``meta.json`` files, so its provenance is shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from featurestore import write_store

import plismbench
from plismbench.data.catalogue import SCANNERS, slide_id

N_TILES = 24
STAININGS4 = ("GIV", "GM", "HR", "MY")


def slides(
    seed: int, stainings: tuple[str, ...], scanners: tuple[str, ...], noise: float, shift: float
) -> dict[str, np.ndarray]:
    """Shared tissue signal + a per-staining and per-scanner shift + per-slide noise."""
    rng = np.random.default_rng(seed)
    d = 16
    base = rng.standard_normal((N_TILES, d))
    st = {s: shift * (1 + i / 3) * rng.standard_normal(d) for i, s in enumerate(stainings)}
    sc = {s: shift * (0.5 + i / 4) * rng.standard_normal(d) for i, s in enumerate(scanners)}
    return {
        slide_id(a, b): base + st[a] + sc[b] + noise * rng.standard_normal((N_TILES, d))
        for a in stainings
        for b in scanners
    }


META = {
    "model": "good",
    "pooling": "cls",
    "precision": "fp32",
    "weights_sha256": "ab" * 32,
    "hub_revision": "c" * 40,
    "source": {"kind": "folder", "path": "/data/plism", "revision": "d" * 40},
    "versions": {"torch": "2.5.0", "timm": "1.0.11"},
    "tile_count": N_TILES,
}


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/metrics`` with three finished evaluations at 24 tiles per slide."""
    root = tmp_path_factory.mktemp("report")
    features = root / "features"
    specs = {
        "good": (STAININGS4, SCANNERS, 0.9, 0.5),
        "hed-histogram": (STAININGS4, SCANNERS, 1.3, 0.9),
        "partial": (("GIV", "KR"), ("AT2", "P"), 1.6, 1.2),
    }
    for seed, (model, (st, sc, noise, shift)) in enumerate(specs.items()):
        data = slides(seed, st, sc, noise, shift)
        write_store(features, model, data)
        if model == "good":
            for name in data:
                meta = {**META, "slide_id": name}
                (features / model / name / "meta.json").write_text(json.dumps(meta))
        plismbench.evaluate(
            model, features, root / "metrics", top_k=(10,), progress=False, allow_missing=True
        )
    return root / "metrics"


@pytest.fixture(scope="session")
def report_html(metrics_dir: Path) -> Path:
    """The default report of :func:`metrics_dir`."""
    return plismbench.report(metrics_dir)


@pytest.fixture(scope="session")
def tiny_metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models on 2 stainings x 2 scanners, 8 tiles: a report in a second or two."""
    root = tmp_path_factory.mktemp("tiny")
    for seed, model in enumerate(("alpha", "beta")):
        data = slides(seed, ("GIV", "GM"), ("AT2", "P"), 1.0, 0.5)
        write_store(root / "features", model, {k: v[:8] for k, v in data.items()})
        plismbench.evaluate(
            model, root / "features", root / "metrics", top_k=(1, 10), progress=False,
            allow_missing=True,
        )
    return root / "metrics"
