"""CLI commands for evaluate and leaderboard."""

from plismbench.cli.app import app  # noqa: F401
