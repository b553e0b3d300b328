"""Errors that plismbench reports to users as one clear line."""

from __future__ import annotations


class PlismbenchError(Exception):
    """A user-facing error: the message names the file and the problem.

    The CLI prints the message (no traceback) and exits with ``exit_code``.
    """

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(PlismbenchError):
    """Bad input: a missing, unreadable or inconsistent file or argument."""
