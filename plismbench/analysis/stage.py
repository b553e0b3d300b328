"""The analyze stage of ``plismbench run``: every model, into ``<output>/analysis/``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from plismbench.errors import InputError


def run_stage(
    models: Sequence[str],
    features_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    n_tiles: int | str | None = None,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> bool:
    """Analyse ``models``; True when something was (re)computed.

    Inputs analyze cannot use (e.g. a local folder that is not a balanced staining x
    scanner grid) skip the stage with one logged line: the benchmark itself still runs.
    """
    from plismbench.analysis import analyze

    say = log or (lambda message: None)
    try:
        result = analyze(
            list(models), features_dir, out_dir, n_tiles=n_tiles,
            device="cpu" if device == "cpu" else "auto", log=say,
        )  # fmt: skip
    except InputError as exc:
        say(f"analyze: skipped ({exc.message})")
        return False
    return len(result.reused) < len(result.models)
