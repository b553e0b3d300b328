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


def test_unknown_total_and_finished_task() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=80)
    with make_progress(True, console) as bar:
        task = bar.add_task("m: tiles", total=None)
        bar.advance(task, 2)
        done = bar.add_task("m: done", total=2)
        bar.advance(done, 2)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("m: tiles: 2 in ") and "/" not in lines[0]
    assert lines[1].startswith("m: done: 2/2 in ")


def test_a_terminal_gets_the_live_bar() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    with make_progress(True, console) as bar:
        bar.add_task("m: pairs", total=4, completed=1)
    text = buffer.getvalue()
    assert "m: pairs" in text and "1/4" in text and "eta" in text
    assert ": 1/4 in " not in text


def test_a_finished_task_reports_its_own_time() -> None:
    clock = [0.0]
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=80)
    bar = make_progress(True, console)
    bar.get_time = lambda: clock[0]  # a fake clock, read by the tasks added after
    with bar:
        done = bar.add_task("m: done", total=2)
        running = bar.add_task("m: running", total=9)
        clock[0] = 2.0
        bar.advance(done, 2)
        bar.advance(running, 1)
        clock[0] = 10.0
    lines = buffer.getvalue().splitlines()
    assert lines == ["m: done: 2/2 in 2.0s", "m: running: 1/9 in 10.0s"]


def test_the_terminal_bar_stays_on_screen() -> None:
    bar = make_progress(True, Console(file=io.StringIO(), force_terminal=True))
    assert not bar.live.transient
