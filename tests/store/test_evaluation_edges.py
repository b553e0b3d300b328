"""Edge cases of the evaluation layout, added to kill surviving mutants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plismbench.errors import InputError
from plismbench.store.evaluation import (
    RUN_FILE,
    RunRecord,
    available_n_tiles,
    finished_model_dir,
    is_finished,
    load_run,
    n_tiles_of,
    read_run,
    resolve_n_tiles,
)


def test_available_n_tiles_sorted_dirs_only(tmp_path: Path) -> None:
    for n in (9000, 16, 460, 8139, 2, 123):
        (tmp_path / f"{n}_tiles").mkdir()
    (tmp_path / "77_tiles").write_text("a file, not a folder")
    (tmp_path / "old_5_tiles").mkdir()
    assert available_n_tiles(tmp_path) == [2, 16, 123, 460, 8139, 9000]
    # Several counts, 8,139 among them and not the largest: the default wins.
    assert resolve_n_tiles(tmp_path, None) == 8139
    with pytest.raises(InputError, match=r"found \[2, 16, 123, 460, 8139, 9000\]"):
        resolve_n_tiles(tmp_path, 77)


def test_given_n_tiles_needs_a_folder_even_when_none_exist(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no evaluated models"):
        resolve_n_tiles(tmp_path, 460)


def test_n_tiles_of_needs_the_whole_name() -> None:
    assert n_tiles_of(Path("backup_460_tiles")) is None
    assert n_tiles_of(Path("460_tiles_old") / "m") is None


def test_to_json_is_plain_json() -> None:
    data = RunRecord(slide_ids=("a",), top_k=(1, 5)).to_json()
    assert data["slide_ids"] == ["a"] and data["top_k"] == [1, 5]
    assert data == json.loads(json.dumps(data))


def test_from_json_normalises_slide_ids() -> None:
    assert RunRecord.from_json({"slide_ids": [1, "b"]}).slide_ids == ("1", "b")
    assert RunRecord.from_json({"slide_ids": "ab"}).slide_ids is None
    assert RunRecord.from_json({"slide_ids": {"a": 1}}).slide_ids is None


def test_damaged_fields_make_read_run_none(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="digests"):
        RunRecord.from_json({"digests": ["x"]})
    for bad in ('{"digests": 3}', '{"top_k": 5}', '{"top_k": [null]}', '{"top_k": ["x"]}'):
        (tmp_path / RUN_FILE).write_text(bad)
        assert read_run(tmp_path) is None, bad
    (tmp_path / RUN_FILE).write_text('{"top_k": 5}')
    with pytest.raises(TypeError):
        load_run(tmp_path)


def test_a_folder_without_run_json_is_not_finished(tmp_path: Path) -> None:
    folder = tmp_path / "48_tiles" / "m"
    (folder / RUN_FILE).mkdir(parents=True)  # a directory named run.json
    assert not is_finished(folder)
    with pytest.raises(InputError, match="no finished evaluation"):
        finished_model_dir(tmp_path, 48, "m")


def test_the_only_tile_count_is_chosen(tmp_path: Path) -> None:
    (tmp_path / "460_tiles").mkdir()
    assert resolve_n_tiles(tmp_path, None) == 460


def test_a_key_named_extra_is_kept_as_an_unknown_key() -> None:
    record = RunRecord.from_json({"model": "m", "extra": {"a": 1}})
    assert record.model == "m" and record.extra == {"extra": {"a": 1}}
    assert record.to_json()["extra"] == {"a": 1}
