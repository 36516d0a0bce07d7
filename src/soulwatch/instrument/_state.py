"""The SDK's few process-wide globals, fenced in one module with a reset.

Instruments are shared per registry: instrumenting twice, or building two apps
in one process, reuses the metric objects already registered instead of
registering them again (which prometheus_client refuses with "Duplicated
timeseries").
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry

T = TypeVar("T")

_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, object]] = (
    weakref.WeakKeyDictionary()
)


def shared(registry: CollectorRegistry, key: str, factory: Callable[[], T]) -> T:
    """The object stored under ``key`` for ``registry``, built by ``factory`` the first time."""
    with _lock:
        per_registry = _shared.setdefault(registry, {})
        found = per_registry.get(key)
        if found is None:
            found = per_registry[key] = factory()
        return found  # type: ignore[return-value]


def reset() -> None:
    """Forget every shared instrument (tests that build fresh registries need not call it)."""
    with _lock:
        _shared.clear()
