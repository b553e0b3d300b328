"""The top-level Python API: every name resolves to a plain function (or class) with its real
signature, and importing the packages does not shadow the functions."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import plismbench

FUNCTIONS = ["evaluate", "leaderboard", "compare", "breakdown", "analyze", "extract",
             "download", "synth", "open_source", "register_extractor", "get_extractor",
             "list_extractors", "pair_ranks", "run", "report", "distill"]  # fmt: skip
PACKAGES = ["plismbench.evaluation", "plismbench.extraction", "plismbench.analysis",
            "plismbench.reporting", "plismbench.distillation", "plismbench.store",
            "plismbench.stats"]  # fmt: skip


@pytest.mark.parametrize("name", FUNCTIONS)
def test_api_name_is_a_function_with_its_real_signature(name: str) -> None:
    for sub in PACKAGES:
        importlib.import_module(sub)
    value = getattr(plismbench, name)
    assert isinstance(value, types.FunctionType), (name, type(value))
    params = inspect.signature(value).parameters
    assert params or name == "list_extractors", name
    assert not any(p.kind is p.VAR_POSITIONAL for p in params.values()), name
    assert value.__doc__ and "callable" not in value.__doc__.lower(), name


def test_every_public_name_is_listed() -> None:
    assert set(FUNCTIONS) <= set(plismbench.__all__)
    assert set(FUNCTIONS) <= set(dir(plismbench))


def test_no_callable_module_trick() -> None:
    for sub in PACKAGES:
        module = importlib.import_module(sub)
        assert type(module) is types.ModuleType, sub
        assert not callable(module), sub


def test_unknown_name() -> None:
    with pytest.raises(AttributeError):
        _ = plismbench.nothing_here  # type: ignore[attr-defined]


def test_all_matches_the_lazy_table() -> None:
    assert set(plismbench.__all__) - {"__version__"} == set(plismbench._API)


def test_api_docs_are_generated_from_the_functions() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "gen_api_docs.py"
    out = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
