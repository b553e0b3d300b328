"""CLI commands for the report stage."""

from plismbench.cli.app import app  # noqa: F401
