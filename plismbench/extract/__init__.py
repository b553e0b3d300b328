"""The extract stage: features of every PLISM tile for one model.

The module is callable: ``plismbench.extract(...)`` is :func:`extract`.
"""

from plismbench.extract.config import ExtractConfig
from plismbench.extract.engine import ExtractResult, extract
from plismbench.utils.callable_module import make_callable

__all__ = ["ExtractConfig", "ExtractResult", "extract"]

make_callable(__name__, extract)
