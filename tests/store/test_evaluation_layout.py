"""The evaluation folder's one owner: paths, the choice of tile count, and ``run.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plismbench.errors import InputError
from plismbench.store.evaluation import (
    RUN_FILE,
    RunRecord,
    finished_model_dir,
    load_run,
    model_dir,
    n_tiles_of,
    read_run,
    resolve_n_tiles,
    write_run,
)


def test_paths_and_tile_count(tmp_path: Path) -> None:
    folder = model_dir(tmp_path, 460, "m")
    assert folder == tmp_path / "460_tiles" / "m"
    assert n_tiles_of(folder) == 460 and n_tiles_of(folder.parent) == 460
    assert n_tiles_of(tmp_path) is None


def test_resolve_n_tiles(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no '<n>_tiles' folders"):
        resolve_n_tiles(tmp_path, None)
    for n in (460, 8139):
        (tmp_path / f"{n}_tiles").mkdir()
    assert resolve_n_tiles(tmp_path, None) == 8139
    assert resolve_n_tiles(tmp_path, 460) == 460
    with pytest.raises(InputError, match="no evaluated models"):
        resolve_n_tiles(tmp_path, 5)
    (tmp_path / "8139_tiles").rmdir()
    (tmp_path / "2713_tiles").mkdir()
    with pytest.raises(InputError, match="several tile counts"):
        resolve_n_tiles(tmp_path, None)


def test_run_record_round_trip_keeps_order_and_unknown_keys(tmp_path: Path) -> None:
    record = RunRecord(model="m", slide_ids=("b", "a"), n_tiles=48, top_k=(1, 10),
                       complete=False, extra={"future_key": 3})  # fmt: skip
    write_run(tmp_path, record)
    data = json.loads((tmp_path / RUN_FILE).read_text())
    assert list(data)[:3] == ["plismbench", "model", "features_dir"]
    assert list(data)[-1] == "future_key"
    assert data["slide_ids"] == ["b", "a"] and data["top_k"] == [1, 10]
    back = load_run(tmp_path)
    assert back == record and back.partial


def test_minimal_and_damaged_run_json(tmp_path: Path) -> None:
    (tmp_path / RUN_FILE).write_text('{"top_k": ["1", 10], "n_tiles": 4}')
    record = load_run(tmp_path)
    assert record.top_k == (1, 10) and record.slide_ids is None and not record.partial
    (tmp_path / RUN_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an object"):
        load_run(tmp_path)
    assert read_run(tmp_path) is None
    assert read_run(tmp_path / "absent") is None


def test_finished_model_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no finished evaluation"):
        finished_model_dir(tmp_path, 48, "m")
    write_run(model_dir(tmp_path, 48, "m"), RunRecord(model="m"))
    assert finished_model_dir(tmp_path, 48, "m") == tmp_path / "48_tiles" / "m"
