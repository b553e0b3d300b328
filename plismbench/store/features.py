"""The feature store: ``<features-dir>/<model>/<slide_id>/features.npy``.

Each file is a float array (n_tiles, 3 + d): (deepzoom_level, x, y), then features;
every slide of a model has exactly the same coordinate rows. This is the reference's
layout, so its features evaluate unchanged. A ``meta.json`` may sit beside each file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plismbench.data.catalogue import N_SLIDES, SlideName, parse_slide_id, plism_slide_ids
from plismbench.errors import InputError
from plismbench.metrics.cosine import normalise

NPY_MAGIC = b"\x93NUMPY"
#: The reference layout: ``<features-dir>/<model>/<slide_id>/features.npy`` (float32 rows of
#: (level, x, y) then the features), ``meta.json`` (provenance) beside it, and
#: ``layers/<L>/features.npy`` for intermediate blocks (``extract --layers``).
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
LAYERS_DIR = "layers"
N_COORDS = 3


@dataclass(frozen=True)
class SlideFile:
    """One slide's feature file and what its header says."""

    name: SlideName
    path: Path
    shape: tuple[int, int]
    dtype: str
    size: int
    mtime_ns: int

    @property
    def slide_id(self) -> str:
        return self.name.slide_id


@dataclass(frozen=True)
class FeatureStore:
    """Validated headers of one model's feature files, sorted by slide id."""

    model: str
    root: Path
    slides: tuple[SlideFile, ...]
    #: Every slide id is a PLISM id.
    plism: bool = False

    @property
    def complete(self) -> bool:
        """All 91 PLISM slides, or any non-PLISM store (complete by definition)."""
        return not self.plism or len(self.slides) == N_SLIDES

    @property
    def slide_ids(self) -> list[str]:
        return [s.slide_id for s in self.slides]

    @property
    def n_tiles(self) -> int:
        return self.slides[0].shape[0]

    @property
    def dim(self) -> int:
        return self.slides[0].shape[1] - N_COORDS

    @classmethod
    def open(
        cls, features_dir: str | os.PathLike[str], model: str, *, allow_missing: bool = False
    ) -> FeatureStore:
        """Find and check every ``features.npy`` of ``model`` (headers only: fast).

        A slide folder without ``features.npy`` is an error. A store of PLISM slide ids
        must hold all 91 of them unless ``allow_missing``.
        """
        features_dir = Path(features_dir)
        if not features_dir.is_dir():
            raise InputError(f"{features_dir}: features directory not found")
        root = features_dir / model
        if not root.is_dir():
            models = sorted(p.name for p in features_dir.iterdir() if p.is_dir())
            more = f" (+{len(models) - 10} more)" if len(models) > 10 else ""
            hint = f"; models found there: {', '.join(models[:10])}{more}" if models else ""
            raise InputError(f"{root}: no features for model {model!r}{hint}")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        empty = [p.name for p in folders if not (p / FEATURES_FILE).is_file()]
        if empty:
            raise InputError(
                f"{root}: {len(empty)} slide folder(s) without {FEATURES_FILE}: "
                f"{_listing(empty)}; finish their extraction or remove them"
            )
        files = [p / FEATURES_FILE for p in folders]
        if len(files) < 2:
            raise InputError(
                f"{root}: found {len(files)} slide(s) with {FEATURES_FILE}; need at least 2"
            )
        slides = tuple(_read_header(path) for path in files)
        first = slides[0]
        for s in slides[1:]:
            if s.shape != first.shape:
                raise InputError(
                    f"{s.path}: shape {s.shape} differs from {first.path} {first.shape}; "
                    "every slide must have the same tiles and feature dimension"
                )
        known = set(plism_slide_ids())
        plism = all(s.slide_id in known for s in slides)
        missing = sorted(known - {s.slide_id for s in slides}) if plism else []
        if missing and not allow_missing:
            raise InputError(
                f"{root}: {len(slides)} of the {N_SLIDES} PLISM slides; missing "
                f"{_listing(missing)}; pass --allow-missing to evaluate on these only"
            )
        return cls(model=model, root=root, slides=slides, plism=plism)

    def check_model(self) -> str | None:
        """A one-line warning when a ``meta.json`` names another model than the folder."""
        for s in self.slides:
            meta = s.path.parent / META_FILE
            try:
                named = json.loads(meta.read_text(encoding="utf-8")).get("model")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(named, str) and named != self.model:
                return (
                    f"warning: {meta} names model {named!r}, but the folder is "
                    f"{self.model!r}; check that these are the features you meant"
                )
        return None

    def raw_rows(self, slide: int, rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Raw features of ``rows[idx]`` of one slide, read from the file on demand."""
        path = self.slides[slide].path
        opened: list[np.ndarray] = []

        def get(idx: np.ndarray) -> np.ndarray:
            if not opened:
                opened.append(np.load(path, mmap_mode="r", allow_pickle=False))
            data = opened[0]
            picked = rows[np.asarray(idx, dtype=np.int64)]
            order = np.argsort(picked, kind="stable")
            out = np.empty((len(picked), data.shape[1] - N_COORDS), dtype=np.float64)
            out[order] = data[picked[order], N_COORDS:]
            return out

        return get

    def coords(self) -> np.ndarray:
        """(n_tiles, 3) coordinates of the first slide (all slides share them)."""
        return np.load(self.slides[0].path, mmap_mode="r")[:, :N_COORDS].astype(np.int64)

    def iter_normalised(
        self, rows: np.ndarray, threads: int = 4, out: np.ndarray | None = None
    ) -> Iterator[np.ndarray]:
        """Each slide's rows ``rows``, L2-normalised float32, in slide order.

        Every file is checked in full: same coordinates as the first slide, finite
        values; the rows used must have a non-zero norm. Files are memory-mapped and load
        on ``threads`` threads (NumPy releases the GIL for I/O and arithmetic). With
        ``out`` ((slides x len(rows), d) float32), slide ``s`` is written into its rows
        ``s * len(rows) ...`` and that view is yielded (no other copy).
        """
        n = len(rows)
        every_row = n == self.n_tiles and bool(np.array_equal(rows, np.arange(n)))
        reference = self._load(self.slides[0])[:, :N_COORDS]

        def work(s: SlideFile) -> np.ndarray:
            data = self._load(s)
            dest = None if out is None else out[self.slides.index(s) * n :][:n]
            coords = data[:, :N_COORDS]
            bad = ~np.isfinite(coords).all(axis=1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(f"{s.path}: row {row} has non-finite coordinates")
            if not np.array_equal(coords, reference):
                row = int(np.flatnonzero((coords != reference).any(axis=1))[0])
                raise InputError(
                    f"{s.path}: coordinates differ from {self.slides[0].path} at row {row} "
                    f"({coords[row].tolist()} vs {reference[row].tolist()}); slides must share "
                    "the same tile rows in the same order"
                )
            feats = data[:, N_COORDS:]
            bad = ~np.isfinite(feats).all(axis=1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(f"{s.path}: row {row} has non-finite values (NaN or inf)")
            used = feats if every_row else feats[rows]
            return normalise(used, what=str(s.path), row_ids=rows, out=dest)

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            # in order, with at most ``threads`` files in flight
            pending = [pool.submit(work, s) for s in self.slides[:threads]]
            for i in range(len(self.slides)):
                if i + threads < len(self.slides):
                    pending.append(pool.submit(work, self.slides[i + threads]))
                yield pending[i].result()

    def provenance(self) -> dict[str, Any]:
        """``meta.json`` beside each file, keyed by slide id (absent ones skipped)."""
        out: dict[str, Any] = {}
        for s in self.slides:
            meta = s.path.parent / META_FILE
            if meta.is_file():
                try:
                    out[s.slide_id] = json.loads(meta.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    out[s.slide_id] = {"unreadable": f"{meta}: {exc}"}
        return out

    @staticmethod
    def _load(s: SlideFile) -> np.ndarray:
        try:
            data = np.load(s.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{s.path}: unreadable or truncated .npy ({exc})") from None
        if data.shape != s.shape:
            raise InputError(f"{s.path}: changed while being read (shape {data.shape})")
        return data


def _listing(names: list[str], limit: int = 10) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _read_header(path: Path) -> SlideFile:
    try:
        slide = parse_slide_id(path.parent.name)
    except InputError as exc:
        raise InputError(f"{path.parent}: {exc.message}") from None
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if magic != NPY_MAGIC:
        raise InputError(f"{path}: not a .npy file (no NumPy header); expected np.save output")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: unreadable or truncated .npy ({exc})") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (tiles, 3 + dims), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: dtype {arr.dtype} is not a float type (float32 expected)")
    if arr.shape[0] < 1:
        raise InputError(f"{path}: shape {arr.shape} has no tiles (zero rows)")
    if arr.shape[1] <= N_COORDS:
        raise InputError(
            f"{path}: shape {arr.shape} has no feature columns after the 3 coordinate columns"
        )
    stat = path.stat()
    return SlideFile(
        name=slide,
        path=path,
        shape=(int(arr.shape[0]), int(arr.shape[1])),
        dtype=str(arr.dtype),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )
