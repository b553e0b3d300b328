"""The Typer application object; command modules register onto it.

The group turns a :class:`PlismbenchError` into one red line and its exit code, and Ctrl-C
into one line and exit 130, for every command; it lists commands in pipeline order and shows
flags without a value placeholder.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from plismbench.errors import PlismbenchError

#: Console for errors and logs; results go to stdout.
err_console = Console(stderr=True)

#: Help lists commands in this order (the pipeline's); commands not named here come after.
COMMAND_ORDER: tuple[str, ...] = (
    "download",
    "synth",
    "extract",
    "evaluate",
    "leaderboard",
    "compare",
    "analyze",
    "report",
    "run",
    "distill",
    "models",
)
#: Exit code of an interrupted command (128 + SIGINT), as a shell reports it.
INTERRUPTED_EXIT = 130
INTERRUPTED_MESSAGE = "interrupted; run the same command again to resume"


def _flags_without_metavar(params: list[Any]) -> list[Any]:
    """A flag takes no value: no ``<bool>`` placeholder in the help."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def examples(*commands: str) -> str:
    """A command's help epilog: its examples, one per line, never rewrapped."""
    return "\b\nExamples:\n" + "\n".join(f"  {c}" for c in commands)


class _Command(TyperCommand):
    """A command whose flags show no value placeholder in the help."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_metavar(super().get_params(ctx))


class _Group(TyperGroup):
    """Errors as one line; Ctrl-C as one line and exit 130; commands in pipeline order."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_metavar(super().get_params(ctx))

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PlismbenchError as exc:
            err_console.print(
                f"[bold red]Error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
            )
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print(f"[yellow]{INTERRUPTED_MESSAGE}[/]", highlight=False)
            ctx.exit(INTERRUPTED_EXIT)


class _Typer(typer.Typer):
    """Every command is a :class:`_Command` unless it names another class."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _Typer(
    name="plismbench",
    cls=_Group,
    help="Robustness of pathology foundation models to staining and scanner shifts (PLISM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from plismbench import __version__

        typer.echo(f"plismbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        callback=_version,
        is_eager=True,
    ),
) -> None:
    """Robustness of pathology foundation models to staining and scanner shifts (PLISM)."""
