"""Write synthetic feature stores in the reference layout for tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from plismbench.data.catalogue import slide_id


def grid_coords(n: int) -> np.ndarray:
    """(n, 3) (level, x, y) rows sorted by (x, y)."""
    side = int(np.ceil(np.sqrt(n)))
    xs, ys = np.divmod(np.arange(n), side)
    return np.column_stack([np.full(n, 16), xs * 224, ys * 224]).astype(np.float64)


def write_store(
    features_dir: Path,
    model: str,
    slides: Mapping[str, np.ndarray],
    coords: np.ndarray | None = None,
    dtype: type = np.float32,
) -> Path:
    """``features_dir/model/<slide>/features.npy`` for each slide's (n, d) features."""
    for name, feats in slides.items():
        c = grid_coords(len(feats)) if coords is None else coords
        folder = features_dir / model / name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "features.npy", np.column_stack([c, feats]).astype(dtype))
    return features_dir / model


def plism_like(
    rng: np.random.Generator,
    stainings: tuple[str, ...] = ("GIV", "GM"),
    scanners: tuple[str, ...] = ("AT2", "P"),
    n: int = 50,
    d: int = 16,
    noise: float = 0.7,
    signs: bool = False,
) -> dict[str, np.ndarray]:
    """Registered slides: a shared tissue signal plus per-slide noise (or exact ±1 data)."""
    base = rng.standard_normal((n, d))
    out = {}
    for st in stainings:
        for sc in scanners:
            if signs:
                sign_base = np.where(base >= 0, 1.0, -1.0)
                out[slide_id(st, sc)] = sign_base * np.where(rng.random((n, d)) < 0.25, -1, 1)
            else:
                out[slide_id(st, sc)] = base + noise * rng.standard_normal((n, d))
    return out
