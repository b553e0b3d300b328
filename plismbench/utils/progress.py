"""Rich progress bars on stderr, shared by every long step.

On a terminal the bars are live. Elsewhere (a log file, CI, a pipe) there is no live
display, so no spinner frames or ``eta -:--:--`` remnants: each task prints one plain line
when the display stops, ``<task>: <done>/<total> in <s>s``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _PlainProgress(Progress):
    """Tracks tasks without drawing them; one summary line per task at the end."""

    def stop(self) -> None:
        super().stop()
        for task in self.tasks:
            total = "" if task.total is None else f"/{task.total:g}"
            elapsed = task.finished_time if task.finished else task.elapsed
            self.console.print(
                f"{task.description}: {task.completed:g}{total} in {elapsed or 0.0:.1f}s",
                highlight=False, markup=False, soft_wrap=True,
            )  # fmt: skip


def make_progress(enabled: bool = True, console: Console | None = None) -> Progress:
    """A progress display (disabled: a no-op with the same API)."""
    console = console or Console(stderr=True)
    if enabled and not console.is_terminal:
        return _PlainProgress(console=console, disable=True)
    columns: list[Any] = [
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=console, disable=not enabled, transient=False)
