"""CLI commands for the extract stage (see plismbench.extract)."""

from plismbench.cli.app import app  # noqa: F401
