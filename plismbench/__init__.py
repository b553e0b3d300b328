"""plismbench: robustness of pathology foundation models to staining and scanner shifts.

The Python API mirrors the CLI, one function per command, with the same parameters::

    import plismbench
    result = plismbench.evaluate("h0-mini", features_dir="features", metrics_dir="metrics")
    board = plismbench.leaderboard("metrics")

Packages are nouns (:mod:`plismbench.evaluation`, :mod:`plismbench.extraction`, ...); the
functions here are verbs. Names are imported lazily so that ``import plismbench`` stays fast;
each resolves to the function itself, so ``inspect.signature`` and ``help`` show the real one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API: dict[str, str] = {
    "download": "plismbench.data.download",
    "synth": "plismbench.data.synth",
    "open_source": "plismbench.data.sources",
    "extract": "plismbench.extraction.engine",
    "evaluate": "plismbench.evaluation.engine",
    "EvaluationResult": "plismbench.evaluation.engine",
    "leaderboard": "plismbench.stats.leaderboard",
    "compare": "plismbench.stats.compare",
    "breakdown": "plismbench.stats.model_breakdown",
    "analyze": "plismbench.analysis.api",
    "report": "plismbench.reporting",
    "run": "plismbench.pipeline",
    "distill": "plismbench.distillation",
    "pair_ranks": "plismbench.metrics.ranks",
    "register_extractor": "plismbench.extractors.registry",
    "get_extractor": "plismbench.extractors.registry",
    "list_extractors": "plismbench.extractors.registry",
}

__all__ = [
    "EvaluationResult",
    "__version__",
    "analyze",
    "breakdown",
    "compare",
    "distill",
    "download",
    "evaluate",
    "extract",
    "get_extractor",
    "leaderboard",
    "list_extractors",
    "open_source",
    "pair_ranks",
    "register_extractor",
    "report",
    "run",
    "synth",
]

if TYPE_CHECKING:  # static tools see the real objects
    from plismbench.analysis.api import analyze
    from plismbench.data.download import download
    from plismbench.data.sources import open_source
    from plismbench.data.synth import synth
    from plismbench.distillation import distill
    from plismbench.evaluation.engine import EvaluationResult, evaluate
    from plismbench.extraction.engine import extract
    from plismbench.extractors.registry import get_extractor, list_extractors, register_extractor
    from plismbench.metrics.ranks import pair_ranks
    from plismbench.pipeline import run
    from plismbench.reporting import report
    from plismbench.stats.compare import compare
    from plismbench.stats.leaderboard import leaderboard
    from plismbench.stats.model_breakdown import breakdown


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plismbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
