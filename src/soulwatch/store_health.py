"""Whether soulwatch's own stores accept writes: for ``/health``, ``/ready``, a metric and pages.

Each store reports why its last write failed (``None`` once a write works
again): the TSDB's WAL, the outbox, the alert state, the silences and the
acknowledgements. A full disk makes them
fail while soulwatch goes on evaluating from memory and paging; this is how
that becomes visible instead of a ``/health`` that says ``ok``:

* ``/health`` answers 503 ``degraded`` and names each failing store;
* the console's Status page shows each one, since when and its error;
* ``/ready`` answers 503;
* ``soulwatch_store_failing{store}`` is 1 for each failing store;
* every notification sent meanwhile carries the ``soulwatch_store_failing``
  annotation (see :mod:`soulwatch.alerting.outbox`);
* the log says once when a store starts failing and once when it recovers.

"Since" is when health first saw the store failing; housekeeping asks every
few seconds, so it is that precise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

#: Returns why a store's last write failed, or ``None``.
StoreCheck = Callable[[], str | None]

_log = structlog.get_logger("soulwatch.store_health")


@dataclass(frozen=True)
class StoreFailure:
    """One failing store: why its last write failed, and since when it fails."""

    error: str
    since: float


class StoreHealth:
    """The failing stores among ``checks`` (a Prometheus collector too)."""

    def __init__(
        self,
        checks: Mapping[str, StoreCheck],
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._checks = dict(checks)
        self._clock = clock
        self._since: dict[str, float] = {}
        if registry is not None:
            registry.register(self)

    def failures(self) -> dict[str, StoreFailure]:
        """Every store whose last write failed, with its error and since when."""
        out: dict[str, StoreFailure] = {}
        for name, check in self._checks.items():
            error = check()
            if error is None:
                since = self._since.pop(name, None)
                if since is not None:
                    _log.info("store recovered", store=name, failed_for=self._clock() - since)
                continue
            if name not in self._since:
                self._since[name] = self._clock()
                _log.error("store failing", store=name, error=error)
            out[name] = StoreFailure(error, self._since[name])
        return out

    def failing(self) -> dict[str, str]:
        """``store -> error`` for every store whose last write failed."""
        return {name: f.error for name, f in self.failures().items()}

    def describe(self) -> Iterator[Metric]:
        """The metric's name and help, without asking the stores (for registration)."""
        yield _family()

    def collect(self) -> Iterator[Metric]:
        """``soulwatch_store_failing{store}``: 1 while a store's writes fail."""
        gauge = _family()
        failing = self.failing()
        for name in sorted(self._checks):
            gauge.add_metric([name], 1.0 if name in failing else 0.0)
        yield gauge


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "soulwatch_store_failing",
        "Whether writes to one of soulwatch's stores fail (1) or work (0).",
        labels=["store"],
    )
