"""Job tracking for the agent runner: starts, outcomes, durations, what is running now.

With the default ``kind="agent"`` the metrics are:

* ``agent_jobs_started_total``
* ``agent_jobs_finished_total{outcome, category}`` (``category`` is ``none`` on success)
* ``agent_job_duration_seconds`` (histogram reaching beyond 15 min)
* ``agent_jobs_running``
* ``agent_job_oldest_running_start_timestamp_seconds`` (``+Inf`` when nothing runs,
  so ``time() - x > 900`` is false then, and ``min`` across workers stays right)

Another ``kind`` (``cluster``) gives the same set under its own prefix.
Failure categories are bounded: the seed's, ``other``, and any registered with
:meth:`JobTracker.register_category`; anything else counts as ``other``.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument._state import shared


class Outcome(enum.StrEnum):
    """How a job ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"


class FailureCategory(enum.StrEnum):
    """The failure categories the seed names, plus ``other``."""

    PR_CREATION_FAILED = "pr_creation_failed"
    SANDBOX_TIMEOUT = "sandbox_timeout"
    LINTER_ERROR = "linter_error"
    OTHER = "other"


JOB_DURATION_BUCKETS: Final = (
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
)
"""Job duration buckets in seconds; 900 (the 15 min rule) is a boundary and they go past it."""

_KIND: Final = re.compile(r"[a-z][a-z0-9_]*")
_CATEGORY: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
NO_CATEGORY: Final = "none"


class JobTracker:
    """Records the lifecycle of jobs of one ``kind`` in ``registry``.

    Use :meth:`track` as a context manager, or :meth:`start` and :meth:`finish`
    when start and end happen in different places (a queue consumer).
    """

    def __init__(
        self,
        kind: str = "agent",
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        categories: Sequence[str] = (),
        buckets: Sequence[float] = JOB_DURATION_BUCKETS,
    ) -> None:
        if not _KIND.fullmatch(kind):
            raise ValueError(f"job kind must match [a-z][a-z0-9_]*, got {kind!r}")
        self.kind = kind
        self.clock = clock or SystemClock()
        self.registry = REGISTRY if registry is None else registry
        self._categories = {c.value for c in FailureCategory}
        for category in categories:
            self.register_category(category)
        reg = self.registry
        self.started = Counter(f"{kind}_jobs_started", f"{kind} jobs started.", registry=reg)
        self.finished = Counter(
            f"{kind}_jobs_finished",
            f"{kind} jobs finished, by outcome and failure category.",
            ("outcome", "category"),
            registry=reg,
        )
        self.duration = Histogram(
            f"{kind}_job_duration_seconds",
            f"Duration of finished {kind} jobs.",
            buckets=tuple(buckets),
            registry=reg,
        )
        self.running = Gauge(
            f"{kind}_jobs_running",
            f"{kind} jobs running now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.oldest = Gauge(
            f"{kind}_job_oldest_running_start_timestamp_seconds",
            f"Start time of the oldest running {kind} job (+Inf when none runs).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.oldest.set(math.inf)
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}

    @classmethod
    def for_registry(
        cls,
        kind: str = "agent",
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
    ) -> JobTracker:
        """The shared tracker of ``kind`` in ``registry`` (default: prometheus_client's)."""
        registry = REGISTRY if registry is None else registry
        return shared(registry, f"jobs:{kind}", lambda: cls(kind, registry=registry, clock=clock))

    def register_category(self, category: str) -> None:
        """Allow another failure category (lower-case identifier), e.g. ``github_auth_required``."""
        if not _CATEGORY.fullmatch(category):
            raise ValueError(f"failure category must match [a-z][a-z0-9_]*, got {category!r}")
        self._categories.add(category)

    @property
    def categories(self) -> frozenset[str]:
        """The failure categories accepted as label values."""
        return frozenset(self._categories)

    def start(self, job_id: str) -> None:
        """Record that ``job_id`` started now (a second start of a running id is ignored)."""
        with self._lock:
            if job_id in self._running:
                return
            self._running[job_id] = self.clock.time()
            self.started.inc()
            self._update_running()

    def finish(
        self,
        job_id: str,
        outcome: Outcome | str = Outcome.SUCCESS,
        category: FailureCategory | str | None = None,
    ) -> None:
        """Record the end of ``job_id``; unknown ids count but have no duration."""
        outcome = Outcome(outcome)
        label = NO_CATEGORY
        if outcome is not Outcome.SUCCESS:
            label = str(category or FailureCategory.OTHER)
            if label not in self._categories:
                label = FailureCategory.OTHER.value
        with self._lock:
            started = self._running.pop(job_id, None)
            self.finished.labels(outcome.value, label).inc()
            if started is not None:
                self.duration.observe(max(0.0, self.clock.time() - started))
            self._update_running()

    def _update_running(self) -> None:
        self.running.set(len(self._running))
        self.oldest.set(min(self._running.values(), default=math.inf))

    @contextlib.contextmanager
    def track(self, job_id: str) -> Iterator[JobRun]:
        """Start ``job_id``; finish it as success, or failure when the block raises.

        Set ``run.category`` (and optionally ``run.outcome``) inside the block
        to record why a job failed without raising.
        """
        run = JobRun(job_id)
        self.start(job_id)
        try:
            yield run
        except BaseException:
            self.finish(job_id, Outcome.FAILURE, run.category or FailureCategory.OTHER)
            raise
        outcome = run.outcome or (Outcome.FAILURE if run.category else Outcome.SUCCESS)
        self.finish(job_id, outcome, run.category)


class JobRun:
    """The handle of a tracked job: set ``category``/``outcome`` to describe its end."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.outcome: Outcome | None = None
        self.category: FailureCategory | str | None = None

    def fail(self, category: FailureCategory | str = FailureCategory.OTHER) -> None:
        """Mark the job failed with ``category`` (the block may still end normally)."""
        self.outcome = Outcome.FAILURE
        self.category = category


def track_job(
    job_id: str, kind: str = "agent", *, registry: CollectorRegistry | None = None
) -> contextlib.AbstractContextManager[JobRun]:
    """``with track_job(job_id):`` on the shared tracker of ``kind``."""
    return JobTracker.for_registry(kind, registry).track(job_id)
