"""The service's collector settings: applied once per process, and undone by reset()."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from soulwatch import gc_tuning


@pytest.fixture
def restored() -> Iterator[None]:
    gc_tuning.reset()
    before = gc.get_threshold()
    yield
    gc_tuning.reset()
    assert gc.get_threshold() == before


@pytest.mark.usefixtures("restored")
def test_tuning_freezes_the_heap_and_raises_the_thresholds_once() -> None:
    defaults = gc.get_threshold()
    survivor = [object() for _ in range(10)]  # alive at start-up: frozen, never re-scanned
    assert gc_tuning.tune_gc()
    assert gc.get_freeze_count() > len(survivor)
    assert gc.get_threshold() == gc_tuning.THRESHOLDS
    # A second start in the same process changes nothing.
    assert not gc_tuning.tune_gc((1, 1, 1))
    assert gc.get_threshold() == gc_tuning.THRESHOLDS
    gc_tuning.reset()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == defaults


@pytest.mark.usefixtures("restored")
def test_cycles_are_still_collected_after_tuning() -> None:

    gc_tuning.tune_gc()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
