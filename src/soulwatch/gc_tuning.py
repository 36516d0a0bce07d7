"""The garbage collector's settings for a long-running monitor.

CPython's cyclic collector runs a young-generation pass every 700 container
allocations and, every so often, a full pass over every tracked object. A
monitor holds hundreds of thousands of long-lived containers (label sets,
series, postings, parsed rules), and a rule cycle or a range query allocates
millions of short-lived ones (per-series lists and tuples): the full passes
then re-walk the long-lived heap again and again for nothing.

:func:`tune_gc`, called once the monitor has started, moves everything alive
into the permanent generation (``gc.freeze()``: never scanned again; it is
still freed by reference counting when it goes) and makes the young
generation larger, so a rule cycle triggers a few collections instead of
thousands. Reference counting still frees almost all of the engine's garbage
at once; only cycles wait for the collector.

The settings are process-wide, so they are applied once per process;
:func:`reset` restores the interpreter's defaults (for tests).
"""

from __future__ import annotations

import gc

#: Young-generation threshold (container allocations between collections),
#: then how many young/middle passes run before an older one (Python's
#: defaults: 700, 10, 10). A heavy query's intermediate lists hold millions of
#: references, and each full pass over them holds the GIL for a tenth of a
#: second or more: at the defaults they were walked dozens of times per query
#: and the event loop stalled; with these, a few times.
THRESHOLDS = (50_000, 20, 100)

_defaults: tuple[int, int, int] | None = None


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> bool:
    """Freeze the start-up heap and collect less often; ``False`` if already done."""
    global _defaults
    if _defaults is not None:
        return False
    _defaults = gc.get_threshold()
    # Collect first so start-up's garbage cycles are freed, not frozen for good.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return True


def reset() -> None:
    """Undo :func:`tune_gc`: unfreeze and restore the thresholds it replaced."""
    global _defaults
    if _defaults is None:
        return
    gc.unfreeze()
    gc.set_threshold(*_defaults)
    _defaults = None
