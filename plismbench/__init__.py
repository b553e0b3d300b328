"""plismbench: robustness of pathology foundation models to staining and scanner shifts.

The Python API mirrors the CLI::

    import plismbench
    result = plismbench.evaluate("h0-mini", features_dir="features", metrics_dir="metrics")
    board = plismbench.leaderboard("metrics")

Names are imported lazily so that ``import plismbench`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API: dict[str, str] = {
    "evaluate": "plismbench.evaluate",
    "EvaluationResult": "plismbench.evaluate.engine",
    "leaderboard": "plismbench.evaluate.leaderboard",
    "pair_ranks": "plismbench.metrics.ranks",
    "download": "plismbench.data.download",
    "open_source": "plismbench.data.sources",
    "synth": "plismbench.data.synth",
    "extract": "plismbench.extract",
    "register_extractor": "plismbench.extractors.registry",
    "get_extractor": "plismbench.extractors.registry",
    "distill": "plismbench.distill",
    "report": "plismbench.report",
    "run": "plismbench.pipeline",
    "list_extractors": "plismbench.extractors.registry",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        if name not in globals():  # a subpackage of the same name may have bound itself
            globals()[name] = value
        return globals()[name]
    raise AttributeError(f"module 'plismbench' has no attribute {name!r}")
