"""Lazy imports of optional dependencies, with an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from soulwatch.exceptions import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc
