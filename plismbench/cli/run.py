"""CLI commands for the run stage."""

from plismbench.cli.app import app  # noqa: F401
