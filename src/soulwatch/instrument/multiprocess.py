"""Multi-worker exposition: prometheus_client's multiprocess mode, kept fast.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the workers start), every worker
writes its values to mmap files there and ``/metrics`` sums them, whichever
worker serves the scrape. Two known failures of that mode are handled here:

* files of dead workers pile up (each restart of a worker leaves one file per
  metric type) and every scrape re-reads all of them. :func:`compact` folds the
  files of dead processes into one ``*_archive.db`` per type: counters,
  histograms and summaries are added, ``sum``/``max``/``min``/``mostrecent``
  gauges are merged by their mode, and ``live*``/``all`` gauges, which describe
  a process that no longer exists, are dropped.
* process metrics are per process; the default collector would report only
  the worker that happens to serve the scrape. :class:`WorkerProcessMetrics`
  writes each worker's CPU, memory, open fds and start time as gauges with a
  ``pid`` label.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from soulwatch.instrument._state import shared

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
_ARCHIVE: Final = "archive"
_LOCK_FILE: Final = ".soulwatch-compact.lock"


def multiprocess_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The multiprocess directory from ``PROMETHEUS_MULTIPROC_DIR``, if set."""
    value = (os.environ if environ is None else environ).get(ENV_VAR)
    return Path(value) if value else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _file_pid(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _archive_name(path: Path) -> str:
    # counter_123.db -> counter_archive.db; gauge_sum_123.db -> gauge_sum_archive.db
    return path.stem.rsplit("_", 1)[0] + f"_{_ARCHIVE}.db"


def compact(directory: Path, *, alive: Callable[[int], bool] = _pid_alive) -> int:
    """Fold the files of dead processes in ``directory`` into archives; returns files removed.

    Safe to call from several workers: one compacts at a time (file lock), the
    others return 0 at once. The archive is written to a temporary file and
    renamed into place before the dead files are removed.
    """
    dead: dict[str, list[Path]] = {}
    for path in directory.glob("*.db"):
        pid = _file_pid(path)
        if pid is not None and pid != os.getpid() and not alive(pid):
            dead.setdefault(_archive_name(path), []).append(path)
    if not dead:
        return 0
    lock_path = directory / _LOCK_FILE
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        try:
            removed = 0
            for archive, files in dead.items():
                removed += _fold(directory / archive, [f for f in files if f.exists()])
            return removed
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _fold(archive: Path, files: list[Path]) -> int:
    parts = archive.stem.split("_")
    typ, mode = parts[0], parts[1] if len(parts) > 2 else ""
    if typ == "gauge" and (mode.startswith("live") or mode == "all"):
        for f in files:
            f.unlink(missing_ok=True)
        return len(files)
    merged: dict[str, tuple[float, float]] = {}
    sources = [archive, *files] if archive.exists() else files
    for source in sources:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(  # type: ignore[no-untyped-call]
            str(source)
        ):
            merged[key] = _combine(typ, mode, merged.get(key), (value, timestamp))
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    out = MmapedDict(str(tmp))  # type: ignore[no-untyped-call]
    try:
        for key, (value, timestamp) in merged.items():
            out.write_value(key, value, timestamp)  # type: ignore[no-untyped-call]
    finally:
        out.close()  # type: ignore[no-untyped-call]
    os.replace(tmp, archive)
    for f in files:
        f.unlink(missing_ok=True)
    return len(files)


def _combine(
    typ: str, mode: str, old: tuple[float, float] | None, new: tuple[float, float]
) -> tuple[float, float]:
    if old is None:
        return new
    if typ != "gauge" or mode == "sum":
        return (old[0] + new[0], max(old[1], new[1]))
    if mode == "max":
        return old if old[0] >= new[0] else new
    if mode == "min":
        return old if old[0] <= new[0] else new
    return old if old[1] >= new[1] else new  # mostrecent


def collect_registry(directory: Path) -> CollectorRegistry:
    """A fresh registry summing every worker's files in ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


class WorkerProcessMetrics:
    """Per-worker ``process_*{pid}`` gauges, refreshed at most every ``interval`` seconds.

    In multiprocess mode each worker writes its own values; scraping any
    worker then shows all live workers, one series per ``pid``.
    """

    def __init__(self, registry: CollectorRegistry, interval: float = 5.0) -> None:
        self.interval = interval
        self._source = ProcessCollector(registry=None)
        self._gauges: dict[str, Gauge] = {}
        for name, doc in (
            ("process_cpu_seconds_total", "Total user and system CPU time of the worker."),
            ("process_resident_memory_bytes", "Resident memory of the worker."),
            ("process_virtual_memory_bytes", "Virtual memory of the worker."),
            ("process_open_fds", "Open file descriptors of the worker."),
            ("process_start_time_seconds", "Start time of the worker, seconds since epoch."),
        ):
            self._gauges[name] = Gauge(
                "worker_" + name.removeprefix("process_"),
                doc,
                registry=registry,
                multiprocess_mode="liveall",
            )
        self._last = -float("inf")

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> WorkerProcessMetrics:
        """The shared instance of ``registry``."""
        return shared(registry, "worker-process", lambda: cls(registry))

    def refresh(self, *, force: bool = False) -> None:
        """Copy this process's current CPU/memory readings into the gauges."""
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        for family in self._source.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)


def mark_dead(pids: Iterable[int], directory: Path) -> None:
    """Drop the ``live*`` gauge files of ``pids`` (e.g. from a gunicorn ``child_exit`` hook)."""
    for pid in pids:
        for path in directory.glob(f"gauge_live*_{pid}.db"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
