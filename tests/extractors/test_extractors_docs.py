"""docs/models.md's table is the registry's (regenerate with models_markdown())."""

from __future__ import annotations

from pathlib import Path

from plismbench.extractors.table import BEGIN, END, models_markdown

DOC = Path(__file__).parents[2] / "docs" / "models.md"


def test_docs_models_table_matches_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    shown = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert shown == models_markdown(), "regenerate the table with models_markdown()"
    assert shown.count("\n| ") >= 36 + 1  # header + one row per entry
