"""CLI commands for the data stage (see plismbench.data)."""

from plismbench.cli.app import app  # noqa: F401
