"""The top-level Python API: every name resolves, and functions stay callable even when a
subpackage of the same name has been imported."""

from __future__ import annotations

import importlib

import pytest

import plismbench

FUNCTIONS = ["evaluate", "leaderboard", "extract", "download", "synth", "open_source",
             "register_extractor", "get_extractor", "list_extractors", "pair_ranks", "run",
             "report", "distill"]  # fmt: skip


@pytest.mark.parametrize("name", FUNCTIONS)
def test_api_name_is_callable(name: str) -> None:
    for sub in ("plismbench.evaluate", "plismbench.extract", "plismbench.report",
                "plismbench.distill"):  # fmt: skip
        importlib.import_module(sub)  # binds the subpackage onto ``plismbench``
    assert callable(getattr(plismbench, name)), name


def test_unknown_name() -> None:
    with pytest.raises(AttributeError):
        _ = plismbench.nothing_here  # type: ignore[attr-defined]
