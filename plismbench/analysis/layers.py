"""Intermediate-layer features written by ``extract --layers``.

Layout: ``<features-dir>/<model>/<slide_id>/layers/<L>/features.npy``, the same
(level, x, y) + features rows as the final ``features.npy`` beside it. A layer counts as
present when every slide of the model has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plismbench.errors import InputError
from plismbench.store.features import FEATURES_FILE, LAYERS_DIR, FeatureStore, SlideFile


def available_layers(store: FeatureStore) -> list[str]:
    """Layers present for every slide, numerically sorted."""
    common: set[str] | None = None
    for s in store.slides:
        here = {p.parent.name for p in (s.path.parent / LAYERS_DIR).glob(f"*/{FEATURES_FILE}")}
        common = here if common is None else common & here
    return sorted(common or set(), key=_layer_key)


def _layer_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.lstrip("-").isdigit() else (1 << 30, name)


def parse_layers(text: str | None, store: FeatureStore) -> list[str]:
    """``None`` -> every available layer; ``none``; ``all``; or ``"4,8,12"`` (must exist)."""
    if text is not None and text.strip().lower() == "none":
        return []
    have = available_layers(store)
    if text is None:
        return have
    if text.strip().lower() == "all":
        if not have:
            raise InputError(
                f"{store.root}: --layers all was asked, but no slide has "
                f"{LAYERS_DIR}/<L>/{FEATURES_FILE} (extract with --layers)"
            )
        return have
    wanted = [w for w in text.replace(" ", "").split(",") if w]
    if not wanted:
        raise InputError(f"--layers {text!r}: expected 'all' or comma-separated layer numbers")
    missing = [w for w in wanted if w not in have]
    if missing:
        found = ", ".join(have) if have else "none"
        raise InputError(
            f"{store.root}: layer(s) {', '.join(missing)} not found for every slide "
            f"(layers found: {found}); extract with --layers"
        )
    return wanted


def layer_store(store: FeatureStore, layer: str) -> FeatureStore:
    """The store of one layer: same slides, files under ``layers/<layer>/``."""
    slides = []
    for s in store.slides:
        path = s.path.parent / LAYERS_DIR / layer / FEATURES_FILE
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: unreadable or truncated .npy ({exc})") from None
        if arr.ndim != 2 or arr.shape[0] != s.shape[0] or arr.shape[1] <= 3:
            raise InputError(
                f"{path}: shape {arr.shape} does not match the final features' "
                f"{s.shape[0]} tiles (expected ({s.shape[0]}, 3 + dims))"
            )
        stat = Path(path).stat()
        slides.append(
            SlideFile(
                name=s.name,
                path=path,
                shape=(int(arr.shape[0]), int(arr.shape[1])),
                dtype=str(arr.dtype),
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
            )
        )
    first = slides[0]
    for s2 in slides[1:]:
        if s2.shape != first.shape:
            raise InputError(f"{s2.path}: shape {s2.shape} differs from {first.path} {first.shape}")
    return FeatureStore(model=f"{store.model}@layer{layer}", root=store.root, slides=tuple(slides))
