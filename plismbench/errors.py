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


def no_cuda_error(option: str = "--device cuda") -> InputError:
    """The one wording for asking for a GPU where torch sees none."""
    return InputError(f"{option}: no CUDA GPU is visible here; use --device cpu or auto")


def unknown_device_error(text: str) -> InputError:
    """The one wording for a device name that is not auto, cpu or cuda."""
    return InputError(f"--device {text!r} is not one of auto, cpu, cuda")
