"""CLI commands for the distill stage."""

from plismbench.cli.app import app  # noqa: F401
