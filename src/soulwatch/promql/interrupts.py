"""A long array computation looks at its query's timeout and cancel event as it goes.

The window loop checks the query every few hundred steps; the array path
computes every step at once, and a function over long windows (a day of
samples at every second) walks thousands of window positions in one call.
The caller sets the query's check around that call (:func:`checked_by`) and
the walks call :func:`check` every few positions, so a cancelled or timed-out
query stops within moments there too. A context variable carries the check:
each query runs in its own thread or task, and the array modules need no
evaluator passed through every function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("promql_array_check", default=None)


@contextmanager
def checked_by(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, :func:`check` calls ``check`` (which raises to stop the query)."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def check() -> None:
    """Run the current query's check, if a caller set one."""
    current = _CHECK.get()
    if current is not None:
        current()
