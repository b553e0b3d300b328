"""The Typer application object; command modules register onto it."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from plismbench.errors import PlismbenchError

#: Console for errors and logs; results go to stdout.
err_console = Console(stderr=True)


class _Group(TyperGroup):
    """Turns a :class:`PlismbenchError` into one red line and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PlismbenchError as exc:
            err_console.print(
                f"[bold red]Error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
            )
            ctx.exit(exc.exit_code)


app = typer.Typer(
    name="plismbench",
    cls=_Group,
    help="Robustness of pathology foundation models to staining and scanner shifts (PLISM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
