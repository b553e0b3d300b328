"""Command-line interface: a thin layer over the Python API.

Each area registers its commands in its own module onto `app`.
"""

from __future__ import annotations

# Importing a command module registers its commands on ``app``.
from plismbench.cli import analyze as _analyze  # noqa: F401
from plismbench.cli import compare as _compare  # noqa: F401
from plismbench.cli import data as _data  # noqa: F401
from plismbench.cli import distill as _distill  # noqa: F401
from plismbench.cli import evaluate as _evaluate  # noqa: F401
from plismbench.cli import extract as _extract  # noqa: F401
from plismbench.cli import report as _report  # noqa: F401
from plismbench.cli import run as _run  # noqa: F401
from plismbench.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    app()
