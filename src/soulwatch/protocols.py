"""The extension points of soulwatch, in one place.

A plugin implements one of these :class:`~typing.Protocol` s; it inherits
nothing. Each is defined beside the code that calls it and gathered here, so
that an implementer finds them together and this list is a reviewed decision
(a test locks ``__all__``):

* :class:`Storage` and :class:`Appender`: append samples; select series.
* :class:`QueryEngine`: PromQL instant and range queries.
* :class:`Source`: anything run on a schedule that writes samples.
* :class:`Collector`: reads a system that exposes no metrics.
* :class:`Notifier`: sends one notification; raises ``DeliveryError``.
* :class:`Clock`: every component's time, real or simulated.
"""

from __future__ import annotations

from soulwatch.alerting.notifiers import Notifier
from soulwatch.clock import Clock
from soulwatch.promql.values import QueryEngine
from soulwatch.sources.base import Source
from soulwatch.sources.collectors.base import Collector
from soulwatch.tsdb.storage import Appender, Storage

__all__ = [
    "Appender",
    "Clock",
    "Collector",
    "Notifier",
    "QueryEngine",
    "Source",
    "Storage",
]
