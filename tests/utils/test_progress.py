"""Progress output in a log file: no spinner frames or eta remnants, one line per task."""

from __future__ import annotations

import io

from rich.console import Console

from plismbench.utils.progress import make_progress


def _log(enabled: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=80)
    with make_progress(enabled, console) as bar:
        task = bar.add_task("m: load features", total=3)
        for _ in range(3):
            bar.advance(task)
        bar.add_task("m: slide pairs", total=5)
    return buffer.getvalue()


def test_not_a_terminal_prints_one_plain_line_per_task() -> None:
    text = _log(True)
    lines = text.splitlines()
    assert lines[0].startswith("m: load features: 3/3 in ") and lines[0].endswith("s")
    assert lines[1].startswith("m: slide pairs: 0/5 in ")
    assert len(lines) == 2
    assert "eta" not in text and not any("\u2800" <= ch <= "\u28ff" for ch in text)


def test_disabled_prints_nothing() -> None:
    assert _log(False) == ""
