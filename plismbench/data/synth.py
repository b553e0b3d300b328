"""A synthetic, registered PLISM: real H&E tiles under simulated stainings and scanners.

Stainings are simulated in HED space (Ruifrok-Johnston colour deconvolution): per protocol, the
stain vectors are slightly perturbed and the H, E and D concentrations are scaled by an
``alpha`` in [0.8, 1.2] and shifted by a ``beta`` under 0.01. Scanners are a colour response
(a 3x3 matrix near the identity and a gamma), blur or sharpening, sensor noise, JPEG
compression and a misregistration of a few pixels. Everything is deterministic for a seed,
and the output has the names and formats of the Hub data (h5, tiles-dataset parquet, image
folder), so every reader and the whole benchmark run on it offline.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from plismbench.data.catalogue import SCANNERS, STAININGS, TILE_SIZE, slide_id
from plismbench.data.formats import IMAGE_SUFFIXES, tiles_schema
from plismbench.data.sources import decode_image
from plismbench.data.tiles import parse_tile_id, tile_id
from plismbench.errors import InputError
from plismbench.utils.io import apply_umask, atomic_path

__all__ = ["FORMATS", "ScannerModel", "StainingModel", "base_tiles", "synth"]

#: Output formats: ``h5`` -> ``out/{slide_id}.h5``; ``parquet`` -> ``out/parquet/data/*.parquet``;
#: ``folder`` -> ``out/tiles/<slide_id>/<tile_id>.png``.
FORMATS: tuple[str, ...] = ("h5", "parquet", "folder")
#: Default number of tiles per slide.
DEFAULT_TILES: int = 32
#: The shipped CC0 H&E region (see plismbench/assets/NOTICE.md).
ASSET: str = "cmu1_he_region.jpg"
#: Slides per parquet shard.
SLIDES_PER_SHARD: int = 8

# Ruifrok & Johnston H, E, DAB stain vectors (rows), as in skimage.color.
_RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
_LOG_ADJUST = float(np.log(1e-6))

#: How far stainings vary: ``vectors`` relative perturbation of the stain vectors,
#: ``alpha`` of the H and E concentration scales (1 +- alpha), ``beta`` the absolute H and E shift.
STAINING_STRENGTH: dict[str, float] = {"vectors": 0.06, "alpha": 0.2, "beta": 0.008}
#: How far scanners vary: ``colour`` the off-identity range of the 3x3 colour response,
#: ``gamma`` (1 +- gamma), ``blur`` the strongest 3-tap blur weight (sharpening to -0.12),
#: ``noise`` the largest sensor noise in 0-255 units (from 0.5), ``jpeg_min`` the lowest
#: JPEG quality (to 95), ``shift`` the misregistration in pixels (random direction).
#: Strong enough that the demo separates its models (before issue 23: colour 0.04,
#: gamma 0.1, blur 0.2, noise 2, JPEG from 75, no shift; every model then retrieved
#: every tile across scanners).
SCANNER_STRENGTH: dict[str, float] = {
    "colour": 0.08, "gamma": 0.2, "blur": 0.3, "noise": 4.0, "jpeg_min": 50, "shift": 6.0,
}  # fmt: skip


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names (not on Python's hash)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _normalise_rows(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 HED optical densities (no clipping, so the round trip is exact)."""
    od = np.log(np.maximum(rgb.astype(np.float32) / 255.0, 1e-6)) / np.float32(_LOG_ADJUST)
    return od @ np.linalg.inv(_normalise_rows(_RGB_FROM_HED)).astype(np.float32)


def hed_to_rgb(hed: np.ndarray, rgb_from_hed: np.ndarray) -> np.ndarray:
    """HED optical densities -> float32 RGB in [0, 1] with the given stain vectors."""
    log_rgb = (hed * np.float32(_LOG_ADJUST)) @ rgb_from_hed.astype(np.float32)
    return np.clip(np.exp(log_rgb), 0.0, 1.0)


@dataclass(frozen=True)
class StainingModel:
    """A staining protocol: stain vectors, and per-channel scale and shift of H, E, D."""

    name: str
    rgb_from_hed: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    @classmethod
    def make(cls, name: str, seed: int) -> StainingModel:
        """Deterministic parameters for a staining name and a seed."""
        rng = _rng(seed, "staining", name)
        s = STAINING_STRENGTH
        v, a, b = s["vectors"], s["alpha"], s["beta"]
        vectors = _normalise_rows(_RGB_FROM_HED * rng.uniform(1 - v, 1 + v, size=(3, 3)))
        alpha = np.array([*rng.uniform(1 - a, 1 + a, 2), rng.uniform(0.95, 1.05)], np.float32)
        beta = np.array([*rng.uniform(-b, b, 2), rng.uniform(-0.003, 0.003)], np.float32)
        return cls(name, vectors, alpha, beta)

    def apply(self, hed: np.ndarray) -> np.ndarray:
        """HED -> float32 RGB in [0, 1] under this protocol."""
        return hed_to_rgb(hed * self.alpha + self.beta, self.rgb_from_hed)


@dataclass(frozen=True)
class ScannerModel:
    """A scanner: colour matrix, gamma, blur (> 0) or sharpening (< 0), noise, JPEG quality."""

    name: str
    matrix: np.ndarray
    gamma: float
    blur: float
    noise: float
    jpeg_quality: int
    #: Misregistration: the image content moved by (dx, dy) pixels (edges repeated).
    shift: tuple[int, int] = (0, 0)

    @classmethod
    def make(cls, name: str, seed: int) -> ScannerModel:
        """Deterministic parameters for a scanner name and a seed."""
        rng = _rng(seed, "scanner", name)
        s = SCANNER_STRENGTH
        c, g = s["colour"], s["gamma"]
        matrix = np.eye(3) + rng.uniform(-c, c, size=(3, 3))
        return cls(
            name,
            matrix=(matrix / matrix.sum(axis=1, keepdims=True)).astype(np.float32),
            gamma=float(rng.uniform(1 - g, 1 + g)),
            blur=float(rng.uniform(-0.12, s["blur"])),
            noise=float(rng.uniform(0.5, s["noise"]) / 255.0),
            jpeg_quality=int(rng.integers(int(s["jpeg_min"]), 96)),
            shift=_shift(s["shift"], rng) if s["shift"] else (0, 0),
        )

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 RGB (n, H, W, 3) in [0, 1] -> uint8 tiles as this scanner would save them."""
        x = _translate(np.clip(rgb @ self.matrix.T, 0.0, 1.0), *self.shift)
        x **= np.float32(self.gamma)
        x = _smooth(x, self.blur, axis=1)
        x = _smooth(x, self.blur, axis=2)
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(self.noise)
        tiles = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.stack([_jpeg(t, self.jpeg_quality) for t in tiles])


def _shift(pixels: float, rng: np.random.Generator) -> tuple[int, int]:
    """A displacement of ``pixels`` length in a random direction, rounded to whole pixels."""
    angle = rng.uniform(0.0, 2 * np.pi)
    return round(pixels * np.cos(angle)), round(pixels * np.sin(angle))


def _translate(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(n, H, W, C) images moved by (dx, dy) pixels, edges repeated."""
    if dx == 0 and dy == 0:
        return x
    p = max(abs(dx), abs(dy))
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    return padded[:, p - dy : p - dy + h, p - dx : p - dx + w]


def _smooth(x: np.ndarray, a: float, axis: int) -> np.ndarray:
    """The 3-tap filter [a, 1 - 2a, a] along an axis (edges repeated)."""
    n = x.shape[axis]
    prev = np.take(x, np.r_[0, 0 : n - 1], axis=axis)
    nxt = np.take(x, np.r_[1:n, n - 1], axis=axis)
    return (1 - 2 * a) * x + a * (prev + nxt)


def _jpeg(tile: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="JPEG", quality=quality)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def _dihedral(tile: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(tile, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


def base_tiles(
    n_tiles: int | None = None, *, from_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """The tile ids and uint8 (n, H, W, 3) tiles that every synthetic slide shows.

    From the shipped CC0 H&E region by default (224 px crops at a 112 px stride, then their
    rotations and flips), or from the images of ``from_dir`` (sorted by name; file names that
    are tile ids keep their coordinates).
    """
    if from_dir is not None:
        return _tiles_from_dir(Path(from_dir), n_tiles)
    n = DEFAULT_TILES if n_tiles is None else n_tiles
    if n < 1:
        raise InputError(f"--tiles must be at least 1 (got {n})")
    with resources.files("plismbench.assets").joinpath(ASSET).open("rb") as fh:
        region = np.asarray(Image.open(fh).convert("RGB"))
    stride = TILE_SIZE // 2
    crops = [
        region[y : y + TILE_SIZE, x : x + TILE_SIZE]
        for y in range(0, region.shape[0] - TILE_SIZE + 1, stride)
        for x in range(0, region.shape[1] - TILE_SIZE + 1, stride)
    ]
    picks = _rng(seed, "crops").permutation(len(crops))
    tiles = np.stack([_dihedral(crops[picks[k % len(crops)]], k // len(crops)) for k in range(n)])
    cols = int(np.ceil(np.sqrt(n)))
    names = [tile_id(TILE_SIZE * (k % cols), TILE_SIZE * (k // cols)) for k in range(n)]
    return names, tiles


def _tiles_from_dir(root: Path, n_tiles: int | None) -> tuple[list[str], np.ndarray]:
    if not root.is_dir():
        raise InputError(f"{root}: --from folder not found")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if n_tiles is not None:
        files = files[:n_tiles]
    if not files:
        raise InputError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    tiles: list[np.ndarray] = []
    for path in files:
        tile = decode_image(path, where=str(path), name=path.stem)
        if tiles and tile.shape != tiles[0].shape:
            raise InputError(
                f"{path}: image is {tile.shape[1]}x{tile.shape[0]} px, expected "
                f"{tiles[0].shape[1]}x{tiles[0].shape[0]} like {files[0].name}"
            )
        tiles.append(tile)
    try:
        names = [
            tile_id(x, y, level=lv) for lv, x, y in (parse_tile_id(p.stem, where="") for p in files)
        ]
    except InputError:
        cols = int(np.ceil(np.sqrt(len(files))))
        size = tiles[0].shape[0]
        names = [tile_id(size * (k % cols), size * (k // cols)) for k in range(len(files))]
    return names, np.stack(tiles)


def _choose(values: Iterable[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    if values is None:
        return list(allowed)
    chosen = [v.strip() for v in values if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise InputError(f"unknown {what} {unknown[0]!r}: choose among {', '.join(allowed)}")
    if not chosen:
        raise InputError(f"no {what} chosen")
    return list(dict.fromkeys(chosen))


def _png(tile: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def synth(
    out: str | os.PathLike[str],
    *,
    n_tiles: int | None = None,
    stainings: Iterable[str] | None = None,
    scanners: Iterable[str] | None = None,
    from_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    formats: Iterable[str] = ("h5",),
    workers: int | None = None,
    dataset: str = "plism",
) -> Path:
    """Write a synthetic registered PLISM to ``out`` and return ``out``.

    ``n_tiles`` tiles per slide (default 32, or every image of ``from_dir``), for every
    staining x scanner (default all 13 x 7). ``formats``: ``h5`` (``out/{slide_id}.h5``),
    ``parquet`` (``out/parquet/data/train-*.parquet``) and/or ``folder``
    (``out/tiles/<slide_id>/<tile_id>.png``). Each file appears complete or not at all.
    ``dataset="scorpion"``: a SCORPION-shaped demo instead (:func:`plismbench.data.scorpion.synth`,
    ``out/slide_{i}/sample_{j}/{scanner}.jpg``; only ``seed`` applies).
    """
    if dataset.lower() == "scorpion":
        from plismbench.data.scorpion import synth as scorpion_synth

        return scorpion_synth(out, seed=seed)
    if dataset.lower() != "plism":
        raise InputError(f"--dataset {dataset}: synth knows plism and scorpion")
    fmts = _choose(formats, FORMATS, "format")
    stains = _choose(stainings, STAININGS, "staining")
    scans = _choose(scanners, SCANNERS, "scanner")
    names, base = base_tiles(n_tiles, from_dir=from_dir, seed=seed)
    from plismbench.utils.paths import ensure_writable_dir

    root = ensure_writable_dir(out, "--out-dir")
    hed = rgb_to_hed(base)

    def make(staining: str, stained: np.ndarray, scanner: str) -> tuple[str, list[bytes]]:
        sid = slide_id(staining, scanner)
        model = ScannerModel.make(scanner, seed)
        tiles = model.apply(stained, _rng(seed, "noise", sid))
        if "h5" in fmts:
            _write_h5(root / f"{sid}.h5", names, tiles)
        pngs = [_png(t) for t in tiles] if {"parquet", "folder"} & set(fmts) else []
        if "folder" in fmts:
            _write_folder(root / "tiles" / sid, names, pngs)
        return sid, pngs

    slides: list[tuple[str, list[bytes]]] = []
    n_workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for staining in stains:
            stained = StainingModel.make(staining, seed).apply(hed)
            slides += pool.map(lambda sc, st=staining, x=stained: make(st, x, sc), scans)
    if "parquet" in fmts:
        _write_parquet(root / "parquet" / "data", names, sorted(slides))
    return root


def _write_h5(path: Path, names: list[str], tiles: np.ndarray) -> None:
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, tile in zip(names, tiles, strict=True):
            f.create_dataset(name, data=tile)


def _write_folder(folder: Path, names: list[str], pngs: list[bytes]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    apply_umask(tmp, directory=True)
    try:
        for name, data in zip(names, pngs, strict=True):
            (tmp / f"{name}.png").write_bytes(data)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tiles_table(sid: str, names: list[str], pngs: list[bytes]) -> object:
    """One slide's rows in the tiles-dataset schema."""
    import pyarrow as pa

    from plismbench.data.catalogue import parse_slide_id

    parsed = parse_slide_id(sid)
    n = len(names)
    return pa.table(
        {
            "slide_id": [sid] * n,
            "tile_id": names,
            "png": [{"bytes": b, "path": f"{t}.png"} for t, b in zip(names, pngs, strict=True)],
            "stainer": [parsed.staining] * n,
            "scanner": [parsed.scanner] * n,
        },
        schema=tiles_schema(),  # type: ignore[arg-type]
    )


def _write_parquet(folder: Path, names: list[str], slides: list[tuple[str, list[bytes]]]) -> None:
    import pyarrow.parquet as pq

    shards = [slides[i : i + SLIDES_PER_SHARD] for i in range(0, len(slides), SLIDES_PER_SHARD)]
    row_group = max(1, (len(names) + 1) // 2)
    paths = [folder / f"train-{k:05d}-of-{len(shards):05d}.parquet" for k in range(len(shards))]
    for path, shard in zip(paths, shards, strict=True):
        schema = tiles_schema()
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:  # type: ignore[arg-type]
            for sid, pngs in shard:
                writer.write_table(tiles_table(sid, names, pngs), row_group_size=row_group)
    # Shards of an earlier run are replaced, not kept: their rows would mix with these.
    for stale in folder.glob("train-*-of-*.parquet"):
        if stale not in paths:
            stale.unlink()
