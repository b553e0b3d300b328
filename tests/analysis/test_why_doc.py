"""docs/why.md's numbers are what the code computes (regenerate: docs/why_numbers.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("why_numbers", DOCS / "why_numbers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documented_floors_equal_the_current_code() -> None:
    script = _script()
    text = (DOCS / "why.md").read_text(encoding="utf-8")
    assert script.block(text, "floors") == script.floors(), "run docs/why_numbers.py"


def test_demo_block_has_every_column_of_the_script() -> None:
    script = _script()
    table = script.block((DOCS / "why.md").read_text(encoding="utf-8"), "demo")
    header = table.splitlines()[0]
    assert header == "| model | " + " | ".join(c[0] for c in script.DEMO_COLUMNS) + " |"
    assert len(table.splitlines()) == 5  # three demo models
