"""``plismbench analyze``: why is a model robust? (variance, probes, neighbours, geometry)."""

from __future__ import annotations

from plismbench.analysis.api import AnalysisResult, analyze, gather

__all__ = ["AnalysisResult", "analyze", "gather"]
