"""The extract stage: features of every PLISM tile for one model.

Names load lazily, so that the torch-free :mod:`plismbench.extraction.defaults` can be read
(by the CLI) without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plismbench.extraction.config import ExtractConfig
    from plismbench.extraction.engine import ExtractResult, extract

__all__ = ["ExtractConfig", "ExtractResult", "extract"]
_WHERE = {
    "ExtractConfig": "plismbench.extraction.config",
    "ExtractResult": "plismbench.extraction.engine",
    "extract": "plismbench.extraction.engine",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
