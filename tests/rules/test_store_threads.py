"""The alert state store read from worker threads while the evaluator writes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from soulwatch.alerts import AlertState
from soulwatch.exceptions import StorageError
from soulwatch.rules.state import ActiveAlert, Transition
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.model import Labels

ROUNDS = 300


def _evaluation(i: int) -> tuple[list[ActiveAlert], list[Transition]]:
    """One evaluation: an instance goes pending and another fires, in one save."""
    labels = Labels.of(alertname="Lag", instance=str(i))
    alert = ActiveAlert(labels=labels, annotations={}, state=AlertState.FIRING, active_at=i)
    transitions = [
        Transition(float(i), "g/Lag", "Lag", labels, AlertState.INACTIVE, AlertState.PENDING, 1.0),
        Transition(float(i), "g/Lag", "Lag", labels, AlertState.PENDING, AlertState.FIRING, 1.0),
    ]
    return [alert], transitions


def test_history_reads_in_threads_see_whole_evaluations_while_the_writer_saves(
    tmp_path: Path,
) -> None:
    store = AlertStateStore.in_data_dir(tmp_path)
    done = threading.Event()
    reading = threading.Event()
    seen: list[int] = []

    def reader() -> int:
        reads = 0
        # Bounded: stops when the writer is done, or after 20 000 reads at most.
        while not done.is_set() and reads < 20_000:
            history = store.history(limit=10_000)
            # Each save appends two transitions atomically: a reader never sees one alone.
            assert len(history) % 2 == 0
            if history:
                assert history[0].to_state is AlertState.FIRING
            seen.append(len(history))
            reads += 1
            reading.set()
        return reads

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            readers = [pool.submit(reader) for _ in range(4)]
            try:
                assert reading.wait(timeout=30)
                # The evaluator's writes, on this thread (the event loop's in the monitor).
                for i in range(ROUNDS):
                    alerts, transitions = _evaluation(i)
                    store.save("g/Lag", alerts, transitions, float(i))
            finally:
                done.set()
            counts = [f.result(timeout=60) for f in readers]
        assert all(c > 0 for c in counts)
        assert len(store.history(limit=10_000)) == 2 * ROUNDS
        # Reads went on while the history was being written.
        assert min(seen) < 2 * ROUNDS
        assert [a.labels.get("instance") for a in store.load()["g/Lag"]] == [str(ROUNDS - 1)]
    finally:
        store.close()


def test_a_closed_store_closes_every_threads_reader(tmp_path: Path) -> None:
    store = AlertStateStore.in_data_dir(tmp_path)
    alerts, transitions = _evaluation(1)
    store.save("g/Lag", alerts, transitions, 1.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert len(pool.submit(store.history).result(timeout=10)) == 2
        store.close()
        with pytest.raises(StorageError, match="alert"):
            pool.submit(store.history).result(timeout=10)
    with pytest.raises(StorageError, match="closed"):
        store.history()
