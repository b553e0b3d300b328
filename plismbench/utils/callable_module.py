"""Let a subpackage share its name with the API function it exports.

``plismbench.evaluate`` is both the folder ``plismbench/evaluate/`` and the function
``plismbench.evaluate(...)``. Python binds the subpackage onto its parent once it is
imported, so the module itself is made callable, forwarding to the function.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling module ``module_name`` calls ``function``."""

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
