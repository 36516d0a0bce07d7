"""The demo platform's background workers: an agent runner and a Reddit poller.

They write Redis exactly as the Soulcaster platform does (``job:{id}`` hashes
with string fields and ISO timestamps, ``feedback:source:{project}:reddit``
sorted sets scored by post time), on the demo's clock, so soulwatch's
collectors read them unchanged.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from soulwatch.clock import Clock
from soulwatch.demo.faults import Faults

PROJECT = "demo"

#: What the runner writes into a failed job's logs, one per failure category.
FAILURE_LOGS = [
    "Creating pull request...\nPR creation failed: 422 Validation Failed",
    "Running agent...\nSandbox timeout after 900s",
    "Running ruff...\nLinter error: F401 unused import",
    "Agent script exited with code 1",
]


def iso(t: float) -> str:
    """The platform's timestamp format: naive UTC ISO-8601."""
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None).isoformat()


class AgentRunner:
    """Creates agent jobs and moves them pending → running → success|failed."""

    def __init__(
        self,
        redis: Any,
        clock: Clock,
        faults: Faults,
        *,
        every: float = 60.0,
        work: float = 240.0,
        rng: random.Random | None = None,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._faults = faults
        self._every = every
        self._work = work
        self._rng = rng or random.Random(11)
        self._ids = itertools.count(1)
        self._jobs: dict[str, tuple[str, float]] = {}  # id -> (status, created)
        self._hung: str | None = None

    @property
    def running(self) -> int:
        """Jobs running now (each holds one sandbox)."""
        return sum(1 for status, _ in self._jobs.values() if status == "running")

    async def tick(self) -> None:
        """One step: a new job arrives; the others progress."""
        now = self._clock.time()
        job_id = f"demo-{next(self._ids)}"
        await self._write(job_id, "pending", created=now, now=now)
        for jid, (status, created) in list(self._jobs.items()):
            if jid == self._hung and self._faults.hung_job:
                continue
            if status == "pending" and not self._faults.runner_stalled and now - created >= 1:
                await self._write(jid, "running", created=created, now=now)
            elif status == "running" and now - created >= self._work:
                if self._rng.random() < self._faults.agent_failure_rate:
                    logs = self._rng.choice(FAILURE_LOGS)
                    await self._write(jid, "failed", created=created, now=now, logs=logs)
                else:
                    await self._write(jid, "success", created=created, now=now)
        if self._faults.hung_job and self._hung is None:
            self._hung = next((j for j, (s, _) in self._jobs.items() if s == "running"), None)
        if not self._faults.hung_job and self._hung is not None:
            status, created = self._jobs[self._hung]
            await self._write(self._hung, "success", created=created, now=now)
            self._hung = None

    async def _write(
        self, job_id: str, status: str, *, created: float, now: float, logs: str = ""
    ) -> None:
        await self._redis.hset(
            f"job:{job_id}",
            mapping={
                "id": job_id,
                "status": status,
                "created_at": iso(created),
                "updated_at": iso(now),
                "logs": logs,
                "runner": "e2b",
                "project_id": PROJECT,
                "cluster_id": f"cluster-{job_id}",
                "pr_url": f"https://github.com/acme/app/pull/{job_id}"
                if status == "success"
                else "",
            },
        )
        if status in ("success", "failed"):
            self._jobs.pop(job_id, None)
        else:
            self._jobs[job_id] = (status, created)

    async def run(self, stop: Callable[[], bool]) -> None:
        """Tick every ``every`` seconds of the demo clock until ``stop()``."""
        while not stop():
            await self.tick()
            await self._clock.sleep(self._every)


class RedditPoller:
    """Ingests Reddit items into the platform's sorted set and pings its heartbeat."""

    def __init__(
        self,
        redis: Any,
        clock: Clock,
        faults: Faults,
        *,
        heartbeat: Callable[[], Any] | None = None,
        every: float = 300.0,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._faults = faults
        self._heartbeat = heartbeat
        self._every = every
        self._ids = itertools.count(1)

    async def tick(self) -> None:
        """One poll: a new item and a heartbeat, unless the poller is stalled."""
        if self._faults.poller_stalled:
            return
        now = self._clock.time()
        n = next(self._ids)
        # As the platform's store does, the score is the post's created_utc: the
        # poller picks up posts some minutes after they were written.
        posted = now - 600 - (n % 7) * 300
        await self._redis.zadd(f"feedback:source:{PROJECT}:reddit", {f"t3_{n}": posted})
        if self._heartbeat is not None:
            await self._heartbeat()

    async def run(self, stop: Callable[[], bool]) -> None:
        """Poll every ``every`` seconds of the demo clock until ``stop()``."""
        while not stop():
            await self.tick()
            await self._clock.sleep(self._every)
