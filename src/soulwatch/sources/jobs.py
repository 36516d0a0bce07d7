"""A set of jobs (scrape or probe), each with its own scheduler, reloaded as Prometheus does.

The scrape and probe managers build their jobs their own way; this module
holds what they share: which jobs a new config keeps, starts and stops
(:meth:`JobSet.plan`), switching to them (:meth:`JobSet.apply`), and the
lifecycle of every job's loops. A kept job's loops are never touched, so its
series go on without a gap; a stopped job's series get staleness markers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from soulwatch.sources.base import Scheduler


class Job(Protocol):
    """One job: a name, what it was built from, and its loops."""

    @property
    def name(self) -> str:
        """The job's name (``job_name``), unique in its set."""
        ...

    @property
    def scheduler(self) -> Scheduler:
        """The loops of the job's targets."""
        ...

    async def stop(self) -> None:
        """Stop the loops (staleness markers) and release what the job holds."""
        ...

    async def discard(self) -> None:
        """Release what a job that never ran holds."""
        ...


J = TypeVar("J", bound=Job)


@dataclass
class JobReload(Generic[J]):
    """A new set of jobs from :meth:`JobSet.plan`, not yet running.

    ``kept``, ``added`` and ``removed`` name the jobs; a kept job keeps its
    running loops, so its series go on without a gap or a staleness marker.
    """

    jobs: list[J]
    kept: list[str]
    added: list[str]
    removed: list[str]
    to_start: list[J] = field(default_factory=list, repr=False)
    to_stop: list[J] = field(default_factory=list, repr=False)


class JobSet(Generic[J]):
    """Running jobs and their loops: the scrape and probe managers are job sets."""

    def __init__(self) -> None:
        self.jobs: list[J] = []
        self._running = False

    def by_name(self) -> dict[str, J]:
        """The running jobs by name (what :meth:`plan`'s caller may keep)."""
        return {job.name: job for job in self.jobs}

    def plan(self, jobs: Sequence[J]) -> JobReload[J]:
        """The reload to ``jobs``: running ones among them are kept, the others are new."""
        current = {id(job) for job in self.jobs}
        wanted = {id(job) for job in jobs}
        new = [job for job in jobs if id(job) not in current]
        old = [job for job in self.jobs if id(job) not in wanted]
        return JobReload(
            jobs=list(jobs),
            kept=[job.name for job in jobs if id(job) in current],
            added=[job.name for job in new],
            removed=[job.name for job in old],
            to_start=new,
            to_stop=old,
        )

    async def apply(self, reload: JobReload[J]) -> None:
        """Stop removed and changed jobs, then start new ones if the set runs."""
        for job in reload.to_stop:
            await job.stop()
        self.jobs = reload.jobs
        if self._running:
            for job in reload.to_start:
                job.scheduler.start()

    async def discard(self, reload: JobReload[J]) -> None:
        """Release what :meth:`plan`'s caller built for a reload that will not be applied."""
        for job in reload.to_start:
            await job.discard()

    def start(self) -> None:
        """Start every job's loops."""
        self._running = True
        for job in self.jobs:
            job.scheduler.start()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until no run of any job is in flight (for tests and shutdown)."""
        async with asyncio.timeout(timeout):
            for job in list(self.jobs):
                await job.scheduler.settled(timeout)

    async def stop(self) -> None:
        """Stop every job (staleness markers for every series) and release them."""
        self._running = False
        for job in self.jobs:
            await job.stop()
