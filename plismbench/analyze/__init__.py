"""``plismbench analyze``: why is a model robust? (variance, probes, neighbours, geometry).

The module is callable: ``plismbench.analyze(...)`` is :func:`analyze`.
"""

from __future__ import annotations

from plismbench.analyze.api import AnalysisResult, analyze, gather

__all__ = ["AnalysisResult", "analyze", "gather"]

from plismbench.utils.callable_module import make_callable

make_callable(__name__, analyze)
