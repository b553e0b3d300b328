"""SCORPION on disk: ``slide_{i}/sample_{j}/{scanner}.jpg``, its download, check and demo.

SCORPION (Ryu et al., Lunit, 2025; doi 10.5281/zenodo.16517924) holds 480 tissue samples,
each imaged by 5 scanners. A *unit* is one scanner (its 480 images), a *registered key* is
``slide_{i}/sample_{j}``. The tile given to a model is the centred 224 px crop of each image
at native resolution (:class:`plismbench.data.datasets.TileGeometry`, ``crop="centre"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.base import TileBatch
from plismbench.data.datasets.builtin import SCORPION, SCORPION_SCANNERS
from plismbench.data.formats import IMAGE_SUFFIXES
from plismbench.errors import InputError

_SLIDE = re.compile(r"^slide_(\d+)$")
_SAMPLE = re.compile(r"^sample_(\d+)$")


def find_root(folder: str | os.PathLike[str]) -> Path:
    """The folder holding the ``slide_*`` folders: ``folder`` or one level below it."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: SCORPION folder not found")
    for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        if any(_SLIDE.match(p.name) and p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise InputError(f"{root}: no slide_*/sample_*/{{scanner}}.jpg layout found (SCORPION)")


def index(folder: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``{scanner: {"slide_i/sample_j": path}}`` of a SCORPION folder, checked to be registered.

    Every sample must hold one image per scanner; anything else is one line naming the sample.
    """
    root = find_root(folder)
    paths: dict[str, dict[str, str]] = {s: {} for s in SCORPION_SCANNERS}
    for slide in sorted(p for p in root.iterdir() if _SLIDE.match(p.name) and p.is_dir()):
        for sample in sorted(p for p in slide.iterdir() if _SAMPLE.match(p.name) and p.is_dir()):
            key = f"{slide.name}/{sample.name}"
            images = {
                p.stem: p
                for p in sample.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            }
            lacking = [s for s in SCORPION_SCANNERS if s not in images]
            if lacking:
                raise InputError(
                    f"{sample}: no image for scanner {lacking[0]} ({len(lacking)} of "
                    f"{len(SCORPION_SCANNERS)} missing); every sample needs all five scanners"
                )
            for s in SCORPION_SCANNERS:
                paths[s][key] = str(images[s])
    if not paths[SCORPION_SCANNERS[0]]:
        raise InputError(f"{root}: no slide_*/sample_* folders with images")
    return paths


def verify(folder: str | os.PathLike[str], n_samples: int | None = SCORPION.n_keys) -> str:
    """One line: how many registered samples a SCORPION folder holds (checked against 480)."""
    paths = index(folder)
    n = len(paths[SCORPION_SCANNERS[0]])
    if n_samples is not None and n != n_samples:
        raise InputError(
            f"{find_root(folder)}: {n} samples x {len(SCORPION_SCANNERS)} scanners, expected "
            f"{n_samples}; run the same command again to resume the download"
        )
    return f"{n} samples x {len(SCORPION_SCANNERS)} scanners verified in {find_root(folder)}"


def download(download_dir: str | os.PathLike[str], n_samples: int | None = 480) -> str:
    """Download SCORPION from Zenodo (resumable, md5-checked), unpack and verify it."""
    from plismbench.data.zenodo import download_record

    download_record(SCORPION.source.location, download_dir)
    return verify(download_dir, n_samples)


def centre_crop(image: np.ndarray, size: int, *, where: str) -> np.ndarray:
    """The centred ``size`` x ``size`` crop of an (H, W, 3) image."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise InputError(f"{where}: image is {w}x{h} px, smaller than the {size} px tile")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


@dataclass
class KeyedImageSource:
    """A :class:`~plismbench.data.base.TileSource` over ``{unit: {key: image path}}``.

    Units play the part of slides and registered keys that of tile locations: key ``k`` (in
    sorted order) has coords ``(0, k, 0)``. Each tile is the centred ``tile_size`` crop
    (``crop="centre"``) or the image itself (``crop="native"``).
    """

    paths: Mapping[str, Mapping[str, str]]
    tile_size: int = 224
    crop: str = "centre"
    label: str = "dataset"
    _keys: list[str] = field(init=False)

    def __post_init__(self) -> None:
        keys = sorted(next(iter(self.paths.values())))
        for unit, unit_keys in self.paths.items():
            if sorted(unit_keys) != keys:
                raise InputError(f"{self.label}: unit {unit} does not hold the registered keys")
        self._keys = keys

    def describe(self) -> dict[str, Any]:
        """What ``meta.json`` records as the source."""
        return {"type": "keyed-images", "label": self.label, "crop": self.crop}

    def keys(self) -> list[str]:
        """Registered keys in canonical order."""
        return list(self._keys)

    def slide_ids(self) -> list[str]:
        return sorted(self.paths)

    def coords(self, slide_id: str) -> np.ndarray:
        n = len(self._keys)
        return np.stack([np.zeros(n), np.arange(n), np.zeros(n)], axis=1).astype(np.int64)

    def iter_batches(self, slide_id: str, batch_size: int, start: int = 0) -> Iterator[TileBatch]:
        from plismbench.data.sources import decode_image

        if slide_id not in self.paths:
            raise InputError(f"{self.label}: no unit {slide_id!r}")
        coords = self.coords(slide_id)
        for b in range(start, len(self._keys), batch_size):
            tiles = []
            for key in self._keys[b : b + batch_size]:
                path = self.paths[slide_id][key]
                image = decode_image(path, where=path, name=key)
                if self.crop == "centre":
                    image = centre_crop(image, self.tile_size, where=path)
                tiles.append(image)
            yield TileBatch(slide_id, b, coords[b : b + len(tiles)], np.stack(tiles))


def source(folder: str | os.PathLike[str]) -> KeyedImageSource:
    """SCORPION (real or synthetic) as a tile source: 5 units (scanners) x its samples."""
    g = SCORPION.geometry
    units = {SCORPION.unit_id(scanner=s): keys for s, keys in index(folder).items()}
    return KeyedImageSource(units, g.tile_size, g.crop, label=str(folder))


def synth(
    out: str | os.PathLike[str],
    *,
    n_slides: int = 4,
    samples_per_slide: int = 6,
    image_size: int = 320,
    seed: int = 0,
) -> Path:
    """An offline SCORPION-shaped demo: ``out/slide_{i}/sample_{j}/{scanner}.jpg``.

    Each sample is a ``image_size`` px region of the shipped CC0 H&E crop (random position,
    rotation and flip), under one staining, imaged by 5 simulated scanners named as
    SCORPION's. Deterministic for a seed; each sample folder appears complete or not at all.
    """
    import shutil
    import tempfile
    from importlib import resources

    from PIL import Image

    from plismbench.data.synth import (
        ASSET,
        ScannerModel,
        StainingModel,
        _dihedral,
        _rng,
        rgb_to_hed,
    )

    if n_slides < 1 or samples_per_slide < 1:
        raise InputError("synth --dataset scorpion: needs at least one slide and one sample")
    with resources.files("plismbench.assets").joinpath(ASSET).open("rb") as fh:
        region = np.asarray(Image.open(fh).convert("RGB"))
    if not SCORPION.geometry.tile_size <= image_size <= min(region.shape[:2]):
        raise InputError(
            f"image size {image_size}: must lie in [{SCORPION.geometry.tile_size}, "
            f"{min(region.shape[:2])}]"
        )
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, "scorpion", "crops")
    n = n_slides * samples_per_slide
    ys = rng.integers(0, region.shape[0] - image_size + 1, n)
    xs = rng.integers(0, region.shape[1] - image_size + 1, n)
    ks = rng.integers(0, 8, n)
    base = np.stack(
        [_dihedral(region[y : y + image_size, x : x + image_size], int(k)) for y, x, k in
         zip(ys, xs, ks, strict=True)]
    )  # fmt: skip
    stained = StainingModel.make("scorpion-lab", seed).apply(rgb_to_hed(base))
    scanners = {s: ScannerModel.make(s, seed) for s in SCORPION_SCANNERS}
    images = {s: m.apply(stained, _rng(seed, "noise", "scorpion", s)) for s, m in scanners.items()}
    for k in range(n):
        i, j = divmod(k, samples_per_slide)
        final = root / f"slide_{i}" / f"sample_{j}"
        if final.is_dir() and all((final / f"{s}.jpg").is_file() for s in SCORPION_SCANNERS):
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            for s in SCORPION_SCANNERS:
                Image.fromarray(images[s][k]).save(tmp / f"{s}.jpg", quality=95)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root
