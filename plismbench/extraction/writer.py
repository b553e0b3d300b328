"""Chunk checkpoints off the hot loop, resume from them, and the atomic finish of a slide.

``<slide>/.partial/`` holds ``state.json`` (the run's fingerprint and layers) and, per
checkpoint, ``layer_<L>_chunk_<row>.npy`` for each stored layer, then
``chunk_<row>.npy`` (written last: a checkpoint counts once its final chunk exists).
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plismbench.errors import InputError
from plismbench.extraction.fingerprint import differences, read_json, refuse
from plismbench.utils.io import save_npy, write_json

PARTIAL = ".partial"


def _chunk_name(first: int, layer: int | None = None) -> str:
    prefix = "" if layer is None else f"layer_{layer}_"
    return f"{prefix}chunk_{first:09d}.npy"


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > 5 else "")


class ChunkWriter:
    """A thread that copies features to the host, checks them and saves chunk checkpoints."""

    def __init__(
        self, slide_id: str, partial: Path, chunk_rows: int, start: int, embed_dim: int,
        layers: list[int],
    ):  # fmt: skip
        self.slide_id = slide_id
        self.partial = partial
        self.chunk_rows = chunk_rows
        self.embed_dim = embed_dim
        self.layers = layers
        self.next_row = start
        self.buffer: list[dict[int | None, np.ndarray]] = []
        self.buffered = 0
        self.q: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(
        self, start: int, coords: np.ndarray, feats: torch.Tensor,
        layer_feats: dict[int, torch.Tensor] | None = None,
    ) -> None:  # fmt: skip
        if self.error is not None:
            raise self.error
        self.q.put((start, coords, feats, layer_feats or {}))

    def _flush(self) -> None:
        if not self.buffered:
            return
        first = self.next_row - self.buffered
        for layer in self.layers:
            rows = np.concatenate([b[layer] for b in self.buffer], axis=0)
            save_npy(self.partial / _chunk_name(first, layer), rows)
        rows = np.concatenate([b[None] for b in self.buffer], axis=0)
        save_npy(self.partial / _chunk_name(first), rows)
        self.buffer, self.buffered = [], 0

    def _block(self, coords: np.ndarray, feats: torch.Tensor, start: int) -> np.ndarray:
        host = feats.to("cpu").numpy()
        bad = np.flatnonzero(~np.isfinite(host).all(axis=1))
        if len(bad):
            raise InputError(
                f"slide {self.slide_id}: non-finite features in rows {_rows_text(bad + start)}; "
                "nothing was written for them (try --precision fp32)"
            )
        block = np.empty((len(host), 3 + host.shape[1]), dtype=np.float32)
        block[:, :3] = coords
        block[:, 3:] = host
        return block

    def _run(self) -> None:
        done = False
        try:
            while True:
                item = self.q.get()
                if item is None:
                    done = True
                    self._flush()
                    return
                start, coords, feats, layer_feats = item
                if start != self.next_row:
                    raise RuntimeError(f"writer got rows from {start}, expected {self.next_row}")
                blocks: dict[int | None, np.ndarray] = {None: self._block(coords, feats, start)}
                for layer in self.layers:
                    blocks[layer] = self._block(coords, layer_feats[layer], start)
                self.buffer.append(blocks)
                self.buffered += len(coords)
                self.next_row += len(coords)
                if self.buffered >= self.chunk_rows:
                    self._flush()
        except BaseException as exc:
            self.error = exc
            # Keep draining until close(): put() and close() must never block on a dead writer.
            while not done:
                done = self.q.get() is None

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def chunks(partial: Path, layer: int | None = None) -> list[tuple[int, Path]]:
    """``(first row, path)`` of the final (or one layer's) chunk files, in row order."""
    out = []
    pattern = _chunk_name(0, layer).replace("000000000", "*")
    for path in partial.glob(pattern):
        with contextlib.suppress(ValueError):
            out.append((int(path.stem.rsplit("_", 1)[1]), path))
    return sorted(out)


def resume_row(
    partial: Path, state: dict[str, Any], embed_dim: int, layers: list[int], overwrite: bool
) -> int:
    """Rows already checkpointed (contiguous from 0) by a run with the same fingerprint.

    Partials of another model, weights, precision or preprocessing are refused (or
    cleared with ``overwrite``); damaged ones or other layer sets are cleared.
    """
    state_path = partial / "state.json"
    if partial.exists():
        stored = read_json(state_path)
        if stored is not None and stored != state:
            diffs = differences(stored, state)
            if diffs and not overwrite:
                raise refuse(state_path, diffs, "holds partial features of another setting")
            stored = None
        if stored is None:
            shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    if not state_path.exists():
        write_json(state_path, state)
    row = 0
    for first, path in chunks(partial):
        if first != row:
            break
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or arr.shape[1] != 3 + embed_dim:
            break
        n = arr.shape[0]
        if not all((partial / _chunk_name(first, layer)).exists() for layer in layers):
            break
        row += n
    for layer in (None, *layers):  # anything after a gap is recomputed
        for first, path in chunks(partial, layer):
            if first >= row:
                path.unlink(missing_ok=True)
    return row


def assemble(partial: Path, coords: np.ndarray, width: int, layer: int | None = None) -> np.ndarray:
    """The chunks of one target joined, checked against the source's coordinates."""
    parts = [np.load(path) for _, path in chunks(partial, layer)]
    if parts:
        features = np.concatenate(parts, axis=0)
    else:
        features = np.empty((0, 3 + width), dtype=np.float32)
    if len(features) != len(coords) or not np.array_equal(
        features[:, :3], coords.astype(np.float32)
    ):
        raise InputError(
            f"{partial}: the checkpointed rows do not match the source's coordinates "
            "(the source changed since they were written); use --overwrite to start the slide again"
        )
    return features.astype(np.float32, copy=False)
