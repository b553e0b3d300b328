"""Write synthetic feature stores (reference layout) for the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from plismbench.data.catalogue import SCANNERS, STAININGS, slide_id


def write(features_dir: Path, model: str, slides: Iterable[np.ndarray]) -> None:
    """One PLISM-named slide per array, coordinates on a grid."""
    names = [slide_id(st, sc) for st in STAININGS for sc in SCANNERS]
    for name, feats in zip(names, slides, strict=False):
        n = len(feats)
        xs, ys = np.divmod(np.arange(n), 128)
        coords = np.column_stack([np.full(n, 16), xs * 224, ys * 224]).astype(np.float32)
        folder = features_dir / model / name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "features.npy", np.column_stack([coords, feats]).astype(np.float32))
