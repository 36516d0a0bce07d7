"""Helpers for the alerting tests: a dispatcher + outbox on a simulated clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.config import AlertingConfig, parse_config
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.notifiers.factory import build_notifiers
from soulwatch.alerting.outbox import ForwardingListener, Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.alerts import Alert
from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.model import Labels


def alert(starts_at: float, ends_at: float | None = None, **labels: str) -> Alert:
    """An alert with the given labels."""
    return Alert(
        Labels.of(labels), {"summary": f"{labels.get('alertname')} is broken"}, starts_at, ends_at
    )


@dataclass
class Harness:
    """A running dispatcher and outbox sharing one simulated clock."""

    clock: SimulatedClock
    config: AlertingConfig
    outbox: Outbox
    dispatcher: Dispatcher
    silences: SilenceStore
    registry: CollectorRegistry
    firing: dict[str, Alert] = field(default_factory=dict)
    eval_interval: float = 15.0
    _last_eval: float = 0.0

    async def fire(self, *alerts: Alert) -> None:
        """Send alerts now and keep re-sending them every evaluation, as the rules do."""
        for a in alerts:
            self.firing[a.fingerprint] = a
        self._last_eval = self.clock.time()
        await self.send(*alerts)

    async def resolve(self, *alerts: Alert) -> None:
        """Stop firing: send the alerts with ``ends_at`` = now."""
        now = self.clock.time()
        done = [Alert(a.labels, a.annotations, a.starts_at, now) for a in alerts]
        for a in alerts:
            self.firing.pop(a.fingerprint, None)
        await self.send(*done)

    async def send(self, *alerts: Alert) -> None:
        """Send alerts and let the loops react."""
        await self.dispatcher.send(alerts)
        await self.settle()

    async def settle(self) -> None:
        """Let the loops run and every in-flight HTTP request finish."""
        for _ in range(50):
            await asyncio.sleep(0)
        await self.dispatcher.flush_due()
        await self.outbox.drain()
        for _ in range(20):
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, step: float = 1.0) -> None:
        """Advance simulated time in steps, settling real I/O after each."""
        steps = round(seconds / step)
        for _ in range(steps):
            await self.clock.advance(step)
            if self.firing and self.clock.time() - self._last_eval >= self.eval_interval:
                self._last_eval = self.clock.time()
                await self.dispatcher.send(list(self.firing.values()))
            await self.settle()


@contextlib.asynccontextmanager
async def harness(
    yaml_text: str,
    tmp_path: Path,
    clock: SimulatedClock,
    *,
    db: str = "alerting.db",
    acks: AckStore | None = None,
) -> AsyncIterator[Harness]:
    """Build and run the dispatcher and outbox for ``yaml_text``; stop them on exit."""
    config = parse_config(yaml_text)
    registry = CollectorRegistry()
    async with httpx.AsyncClient(timeout=5.0) as client:
        outbox = Outbox(
            tmp_path / db,
            clock=clock,
            # The dispatcher, built next, raises NotificationFailing.
            listener=ForwardingListener(lambda: dispatcher),
            registry=registry,
            settings=config.delivery,
            rng=random.Random(7),
        )
        outbox.use_notifiers(
            build_notifiers(config, client=client, clock=clock, issue_index=outbox.issues)
        )
        silences = SilenceStore(tmp_path / "silences.db", clock)
        dispatcher = Dispatcher(config, clock=clock, outbox=outbox, silences=silences, acks=acks)
        tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(outbox.run())]
        try:
            yield Harness(clock, config, outbox, dispatcher, silences, registry)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            outbox.close()
            silences.close()
