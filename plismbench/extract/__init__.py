"""The extract stage: features of every PLISM tile for one model."""

from plismbench.extract.engine import ExtractResult, extract

__all__ = ["ExtractResult", "extract"]
