"""The extract stage: features of every PLISM tile for one model.
"""

from plismbench.extraction.config import ExtractConfig
from plismbench.extraction.engine import ExtractResult, extract

__all__ = ["ExtractConfig", "ExtractResult", "extract"]
