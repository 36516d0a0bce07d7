"""Running a scenario: the real monitor on a simulated clock, checked step by step.

The configuration under test runs in a :class:`~soulwatch.service.Monitor`
with a :class:`~soulwatch.clock.SimulatedClock`, a data directory in a
temporary folder, blocking calls run inline (so every loop step happens at
the simulated instant it is due) and notifications captured by
:mod:`soulwatch.scenario.recording`. Scrape jobs, probes, collectors and the
dead man's switch are removed from the configuration: the scenario's
``samples`` stand in for them. Rules, heartbeats, silences, routing,
grouping, inhibition, the outbox and the notifiers are the real ones.

Samples are written one timestamp ahead of the clock, so a rule evaluated at
``t`` sees exactly the samples at or before ``t``, as in promtool.
"""

from __future__ import annotations

import heapq
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from soulwatch.alerting.silences import PostableSilence, SilenceMatcher
from soulwatch.clock import SimulatedClock
from soulwatch.config import CollectorsConfig, SelfMonitoringConfig, SoulwatchConfig
from soulwatch.duration import format_duration
from soulwatch.scenario.model import ExpectedNotification, Scenario, Step
from soulwatch.scenario.recording import RecordingTransport, SentNotification, recording
from soulwatch.service import Monitor, run_inline
from soulwatch.sources.heartbeats import Ping, PingKind
from soulwatch.tsdb.model import Labels

#: Loop turns granted after each clock wake-up: enough for an alert to travel
#: from a rule evaluation through the dispatcher and the outbox to a notifier.
SETTLE_TURNS = 20

_NEVER = 1e12


@dataclass(frozen=True)
class StepResult:
    """The outcome of one timeline step."""

    index: int
    at: float
    line: int
    summary: str
    passed: bool
    problems: tuple[str, ...] = ()
    sent: tuple[SentNotification, ...] = ()


@dataclass
class ScenarioResult:
    """The outcome of a whole scenario."""

    file: Path
    name: str
    steps: list[StepResult] = field(default_factory=list)
    sent: list[SentNotification] = field(default_factory=list)
    #: ``METHOD URL`` of every HTTP request the notifiers made (answered in-process).
    requests: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return all(step.passed for step in self.steps)


def match(
    expected: list[ExpectedNotification], sent: list[SentNotification]
) -> tuple[list[ExpectedNotification], list[SentNotification]]:
    """Pair expectations with notifications one to one, as many as possible.

    Returns the expectations left without a notification and the
    notifications left without an expectation (a maximum bipartite matching,
    so that a loose expectation never takes the notification a precise one needs).
    """
    owner: dict[int, int] = {}  # sent index -> expected index

    def assign(e: int, seen: set[int]) -> bool:
        for s, item in enumerate(sent):
            if s in seen or not matches(expected[e], item):
                continue
            seen.add(s)
            if s not in owner or assign(owner[s], seen):
                owner[s] = e
                return True
        return False

    matched = {e for e in range(len(expected)) if assign(e, set())}
    missing = [x for e, x in enumerate(expected) if e not in matched]
    extra = [x for s, x in enumerate(sent) if s not in owner]
    return missing, extra


def matches(expected: ExpectedNotification, sent: SentNotification) -> bool:
    """Whether ``sent`` is what ``expected`` describes."""
    if expected.receiver != sent.receiver or expected.status != sent.status.value:
        return False
    common = sent.common_labels
    if expected.alertname is not None and common.get("alertname") != expected.alertname:
        return False
    if any(common.get(k) != v for k, v in expected.labels.items()):
        return False
    if expected.alerts is not None and expected.alerts != len(sent.alerts):
        return False
    if expected.between is not None:
        low, high = expected.between
        if not low - 1e-6 <= sent.offset <= high + 1e-6:
            return False
    return True


def under_test(config: SoulwatchConfig, data_dir: Path) -> SoulwatchConfig:
    """``config`` without live sources and with its data in ``data_dir``."""
    # The data is thrown away after the run: no fsync (it would dominate the run time).
    storage = config.storage.model_copy(
        update={"path": data_dir / "tsdb", "wal_fsync_interval": _NEVER}
    )
    return config.model_copy(
        update={
            "data_dir": data_dir,
            "storage": storage,
            "scrape_configs": [],
            "scrape_config_files": [],
            "probes": [],
            "collectors": CollectorsConfig(),
            "self_monitoring": SelfMonitoringConfig(),
        }
    )


def _scratch_parent() -> Path | None:
    # A memory-backed directory makes the stores' fsyncs free; the data is thrown away.
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


async def run_scenario(scenario: Scenario, *, work_dir: Path | None = None) -> ScenarioResult:
    """Run ``scenario`` and check every expectation; never raises for a failed check.

    The monitor's data lives in a temporary directory under ``work_dir``
    (default: ``/dev/shm`` when available, else the system's temporary
    directory), removed afterwards.
    """
    parent = work_dir if work_dir is not None else _scratch_parent()
    with tempfile.TemporaryDirectory(prefix="soulwatch-scenario-", dir=parent) as tmp:
        return await _Run(scenario, Path(tmp)).run()


class _Run:
    def __init__(self, scenario: Scenario, data_dir: Path) -> None:
        self.scenario = scenario
        self.clock = SimulatedClock(start=scenario.start)
        self.transport = RecordingTransport()
        self.result = ScenarioResult(scenario.file, scenario.name)
        self.monitor = Monitor(
            under_test(scenario.config, data_dir),
            clock=self.clock,
            transport=self.transport,
            run_blocking=run_inline,
            wrap_notifiers=lambda notifiers: recording(
                notifiers, self.result.sent, clock=self.clock, start=scenario.start
            ),
        )
        self._pending: list[tuple[int, int, Labels, float]] = []
        self._seq = itertools.count()
        self._checked = 0
        self._last_check = 0.0
        self._silence_ids: dict[str, str] = {}

    async def run(self) -> ScenarioResult:
        await self.monitor.start()
        try:
            for index, step in enumerate(self.scenario.steps):
                # Queued before the clock moves, so an evaluation at the step's
                # own time sees the step's first samples.
                self._queue_samples(index, step)
                await self._advance_to(self.scenario.start + step.at)
                self.result.steps.append(await self._step(index, step))
            await self._settle()
            leftover = self.result.sent[self._checked :]
            if leftover:
                last = self.scenario.steps[-1]
                self.result.steps.append(
                    StepResult(
                        index=len(self.scenario.steps),
                        at=last.at,
                        line=self.scenario.lines[-1],
                        summary="end: nothing unchecked went out",
                        passed=False,
                        problems=tuple(f"unexpected: {s.describe()}" for s in leftover),
                        sent=tuple(leftover),
                    )
                )
        finally:
            await self.monitor.stop()
        self.result.requests = [f"{r.method} {r.url}" for r in self.transport.requests]
        return self.result

    # -- time ---------------------------------------------------------------------------

    async def _advance_to(self, target: float) -> None:
        """Move the clock to ``target``, writing each sample just before its time comes."""
        while self._pending and self._pending[0][0] <= round(target * 1000):
            t_ms = self._pending[0][0]
            app = self.monitor.storage.appender()
            while self._pending and self._pending[0][0] == t_ms:
                _, _, labels, value = heapq.heappop(self._pending)
                app.append(labels, t_ms, value)
            app.commit()
            await self._advance(t_ms / 1000)
        await self._advance(target)

    async def _advance(self, target: float) -> None:
        delta = target - self.clock.time()
        if delta > 0:
            await self.clock.advance(delta, settle=SETTLE_TURNS)

    async def _settle(self) -> None:
        await self.clock.advance(0, settle=SETTLE_TURNS)

    # -- steps --------------------------------------------------------------------------

    def _queue_samples(self, index: int, step: Step) -> None:
        at_ms = round((self.scenario.start + step.at) * 1000)
        interval_ms = round(self.scenario.intervals.get(index, 0.0) * 1000)
        for item in self.scenario.series.get(index, []):
            for k, value in enumerate(item.values):
                if value is not None:
                    t_ms = at_ms + k * interval_ms
                    heapq.heappush(self._pending, (t_ms, next(self._seq), item.labels, value))

    async def _step(self, index: int, step: Step) -> StepResult:
        done: list[str] = []
        now = self.clock.time()
        if index in self.scenario.series:
            count = len(self.scenario.series[index])
            every = format_duration(self.scenario.intervals[index])
            done.append(f"samples ({count} series every {every})")
        for ping in step.pings:
            check = self.monitor.heartbeats.by_name(ping.check)
            assert check is not None  # checked when the scenario was loaded
            self.monitor.heartbeats.ping_uuid(check.uuid, Ping(now, PingKind(ping.kind)))
            done.append(f"ping {ping.check} {ping.kind}")
        if step.silence is not None:
            silence = step.silence
            postable = PostableSilence(
                matchers=[
                    SilenceMatcher.from_matcher(m) for m in self.scenario.silence_matchers[index]
                ],
                startsAt=datetime.fromtimestamp(now, UTC),
                endsAt=datetime.fromtimestamp(now + silence.duration, UTC),
                createdBy=silence.created_by,
                comment=silence.comment,
            )
            sid = self.monitor.silences.create(postable)
            if silence.id is not None:
                self._silence_ids[silence.id] = sid
            done.append(
                f"silence {', '.join(silence.matchers)} for {format_duration(silence.duration)}"
            )
        if step.expire_silence is not None:
            self.monitor.silences.expire(self._silence_ids[step.expire_silence])
            done.append(f"expire silence {step.expire_silence}")
        await self._settle()
        if not step.checks:
            return StepResult(index, step.at, self.scenario.lines[index], "; ".join(done), True)
        return self._check(index, step, done)

    def _check(self, index: int, step: Step, done: list[str]) -> StepResult:
        sent = self.result.sent[self._checked :]
        since = self._last_check
        self._checked = len(self.result.sent)
        self._last_check = step.at
        expected = step.expect or []
        missing, extra = match(expected, sent)
        problems = [f"missing:    {e.describe()}" for e in missing]
        problems += [f"unexpected: {s.describe()}" for s in extra]
        if problems:
            problems += [f"went out:   {s.describe()}" for s in sent] or ["went out:   nothing"]
        n = len(expected)
        what = f"expect {n} notification{'s' if n != 1 else ''}" if expected else "expect none"
        what += f" since {format_duration(since)}"
        return StepResult(
            index,
            step.at,
            self.scenario.lines[index],
            "; ".join([*done, what]),
            not problems,
            tuple(problems),
            tuple(sent),
        )
