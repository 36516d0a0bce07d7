"""Whether soulwatch's own stores accept writes: for ``/health``, ``/ready``, a metric and pages.

Each store reports why its last write failed (``None`` once a write works
again): the TSDB's WAL, the outbox, the alert state. A full disk makes them
fail while soulwatch goes on evaluating from memory and paging; this is how
that becomes visible instead of a ``/health`` that says ``ok``:

* ``/health`` answers 503 ``degraded`` and names each failing store;
* ``/ready`` answers 503;
* ``soulwatch_store_failing{store}`` is 1 for each failing store;
* every notification sent meanwhile carries the ``soulwatch_store_failing``
  annotation (see :mod:`soulwatch.alerting.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

#: Returns why a store's last write failed, or ``None``.
StoreCheck = Callable[[], str | None]


class StoreHealth:
    """The failing stores among ``checks`` (a Prometheus collector too)."""

    def __init__(
        self, checks: Mapping[str, StoreCheck], *, registry: CollectorRegistry | None = None
    ) -> None:
        self._checks = dict(checks)
        if registry is not None:
            registry.register(self)

    def failing(self) -> dict[str, str]:
        """``store -> error`` for every store whose last write failed."""
        out: dict[str, str] = {}
        for name, check in self._checks.items():
            error = check()
            if error is not None:
                out[name] = error
        return out

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
