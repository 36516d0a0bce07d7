"""``alerting.alertmanagers``: send soulwatch's alerts to Alertmanagers as Prometheus does.

The section of a prometheus.yml loads unchanged (``static_configs``,
``scheme``, ``path_prefix``, ``timeout``, ``api_version: v2``,
``basic_auth``, ``authorization``, ``tls_config``, ``relabel_configs``),
and so do the global ``alert_relabel_configs``. Service discovery is
refused with a clear error rather than ignored.

:class:`AlertmanagerSender` is an :class:`~soulwatch.alerts.AlertSink`
beside soulwatch's own routing: the rule manager hands it what is due
(firing alerts every resend delay, a resolved alert at once and for 15
minutes after), it adds the external labels, applies
``alert_relabel_configs``, gives a firing alert ``endsAt`` a few evaluation
intervals ahead (so an Alertmanager resolves it by itself if soulwatch goes
away), queues, and POSTs batches of 64 to ``/api/v2/alerts`` of every
Alertmanager at once. As in Prometheus a failed POST is counted and logged,
not retried: the next resend carries the alert again.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field, model_validator

from soulwatch import __version__
from soulwatch.alerting.message import iso
from soulwatch.alerts import Alert
from soulwatch.clock import Clock
from soulwatch.duration import Duration
from soulwatch.http_auth import ClientSettings, authorization_header
from soulwatch.sources.scrape.config import (
    RelabelConfig,
    StaticConfig,
)
from soulwatch.sources.scrape.relabel import Relabeler

_log = structlog.get_logger("soulwatch.alertmanagers")

#: Prometheus's notifier: queue capacity and alerts per POST.
QUEUE_CAPACITY = 10_000
BATCH_SIZE = 64


class AlertmanagerConfig(ClientSettings):
    """One entry of ``alerting.alertmanagers``, with Prometheus's keys and defaults."""

    static_configs: list[StaticConfig] = Field(default_factory=list)
    scheme: Literal["http", "https"] = "http"
    path_prefix: str = "/"
    timeout: Duration = 10.0
    api_version: Literal["v2"] = "v2"
    enable_http2: bool = True
    relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    alert_relabel_configs: list[RelabelConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_discovery(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key.endswith("_sd_configs"):
                    raise ValueError(
                        f"{key} is not supported: list the Alertmanagers in static_configs"
                    )
        return data


@dataclass(frozen=True)
class _Target:
    url: str
    config: AlertmanagerConfig
    client: httpx.AsyncClient
    relabel: Relabeler


def _client(config: AlertmanagerConfig) -> httpx.AsyncClient:
    headers = {"User-Agent": f"soulwatch/{__version__}"}
    credentials = authorization_header(config, "alerting.alertmanagers")
    if credentials is not None:
        headers["Authorization"] = credentials
    verify: Any = True
    if config.scheme == "https" and config.tls_config is not None:
        # imported here: the config model must not pull in the scrape machinery
        from soulwatch.sources.scrape.manager import ssl_context

        verify = ssl_context(config.tls_config)
    return httpx.AsyncClient(
        headers=headers,
        verify=verify,
        timeout=config.timeout,
        follow_redirects=config.follow_redirects,
        trust_env=False,
    )


def _targets(configs: Sequence[AlertmanagerConfig]) -> list[_Target]:
    """The Alertmanagers of ``configs`` after ``relabel_configs`` (``__address__``,
    ``__scheme__``, ``__alerts_path__``), as Prometheus discovers static ones."""
    out: list[_Target] = []
    for config in configs:
        client: httpx.AsyncClient | None = None
        path = posixpath.join("/", config.path_prefix, "api/v2/alerts")
        relabel = Relabeler(config.relabel_configs)
        for static in config.static_configs:
            for address in static.targets:
                labels = {
                    **static.labels,
                    "__address__": address,
                    "__scheme__": config.scheme,
                    "__alerts_path__": path,
                }
                kept = relabel.process(labels) if relabel else labels
                if kept is None:
                    continue
                if client is None:
                    client = _client(config)
                url = f"{kept['__scheme__']}://{kept['__address__']}{kept['__alerts_path__']}"
                out.append(_Target(url, config, client, Relabeler(config.alert_relabel_configs)))
    return out


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        reg = registry or CollectorRegistry()
        self.sent = Counter(
            "soulwatch_alertmanager_notifications_sent_total",
            "Alerts sent to each Alertmanager.",
            ["alertmanager"],
            registry=reg,
        )
        self.errors = Counter(
            "soulwatch_alertmanager_notifications_errors_total",
            "Alerts whose POST to an Alertmanager failed.",
            ["alertmanager"],
            registry=reg,
        )
        self.dropped = Counter(
            "soulwatch_alertmanager_notifications_dropped_total",
            "Alerts dropped because the queue was full.",
            registry=reg,
        )
        self.queue = Gauge(
            "soulwatch_alertmanager_notifications_queue_length",
            "Alerts waiting to be sent to the Alertmanagers.",
            registry=reg,
        )
        self.discovered = Gauge(
            "soulwatch_alertmanagers_discovered",
            "Alertmanagers alerts are sent to.",
            registry=reg,
        )


class AlertmanagerSender:
    """Queues alerts and POSTs them to every configured Alertmanager."""

    def __init__(
        self,
        configs: Sequence[AlertmanagerConfig],
        *,
        clock: Clock,
        external_labels: dict[str, str] | None = None,
        alert_relabel_configs: Sequence[RelabelConfig] = (),
        valid_for: float = 240.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._clock = clock
        self._valid_for = valid_for
        self._metrics = _Metrics(registry)
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._targets: list[_Target] = []
        self._external: dict[str, str] = {}
        self._relabel = Relabeler([])
        self.configure(configs, external_labels or {}, alert_relabel_configs, valid_for)

    @property
    def urls(self) -> list[str]:
        """The ``/api/v2/alerts`` URL of every Alertmanager."""
        return [t.url for t in self._targets]

    def configure(
        self,
        configs: Sequence[AlertmanagerConfig],
        external_labels: dict[str, str],
        alert_relabel_configs: Sequence[RelabelConfig],
        valid_for: float,
    ) -> None:
        """Apply a (re)loaded configuration; raises :class:`ConfigError` on an unreadable secret
        before changing anything."""
        targets = _targets(configs)
        old = self._targets
        self._targets = targets
        self._external = dict(external_labels)
        self._relabel = Relabeler(alert_relabel_configs)
        self._valid_for = valid_for
        self._metrics.discovered.set(len(targets))
        for client in {id(t.client): t.client for t in old}.values():
            # Close the old clients once the loop is free; requests in flight finish first.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(client.aclose())

    # --- AlertSink -----------------------------------------------------------------

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` (never blocks on the network)."""
        if not self._targets:
            return
        now = self._clock.time()
        for alert in alerts:
            posted = self._postable(alert, now)
            if posted is not None:
                self._queue.append(posted)
        overflow = len(self._queue) - QUEUE_CAPACITY
        for _ in range(max(0, overflow)):
            self._queue.popleft()  # the oldest go first, as in Prometheus
        if overflow > 0:
            self._metrics.dropped.inc(overflow)
        self._metrics.queue.set(len(self._queue))
        self._wake.set()

    def _postable(self, alert: Alert, now: float) -> dict[str, Any] | None:
        labels = alert.labels.to_dict()
        for name, value in self._external.items():
            labels.setdefault(name, value)
        if self._relabel:
            relabeled = self._relabel.process(labels)
            if relabeled is None:
                return None
            labels = relabeled
        ends = alert.ends_at if alert.ends_at is not None else now + self._valid_for
        return {
            "labels": labels,
            "annotations": dict(alert.annotations),
            "startsAt": iso(alert.starts_at),
            "endsAt": iso(ends),
            "generatorURL": alert.generator_url,
        }

    # --- delivery ------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Alerts waiting to be sent."""
        return len(self._queue)

    async def run(self) -> None:
        """Send queued alerts as they come, forever (cancel to stop)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.flush()
        finally:
            await self.aclose()

    async def flush(self) -> None:
        """Send everything queued, in batches of :data:`BATCH_SIZE`."""
        while self._queue:
            size = min(BATCH_SIZE, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self._metrics.queue.set(len(self._queue))
            await self.deliver(batch)

    async def deliver(self, batch: list[dict[str, Any]]) -> None:
        """POST one batch to every Alertmanager at once."""
        await asyncio.gather(*(self._post(t, batch) for t in self._targets))

    async def _post(self, target: _Target, batch: list[dict[str, Any]]) -> None:
        body = batch
        if target.relabel:
            body = []
            for item in batch:
                labels = target.relabel.process(dict(item["labels"]))
                if labels is not None:
                    body.append({**item, "labels": labels})
            if not body:
                return
        try:
            response = await target.client.post(target.url, json=body)
            if response.status_code // 100 != 2:
                raise httpx.HTTPStatusError(
                    f"bad response status {response.status_code}",
                    request=response.request,
                    response=response,
                )
        except httpx.HTTPError as exc:
            self._metrics.errors.labels(alertmanager=target.url).inc(len(body))
            _log.warning(
                "error sending alerts to an Alertmanager",
                alertmanager=target.url,
                count=len(body),
                error=str(exc) or type(exc).__name__,
            )
            return
        self._metrics.sent.labels(alertmanager=target.url).inc(len(body))

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for client in {id(t.client): t.client for t in self._targets}.values():
            await client.aclose()


class FanOutSink:
    """An :class:`~soulwatch.alerts.AlertSink` handing the same alerts to several sinks."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = [s for s in sinks if s is not None]

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Send to each sink in turn; the first failure is raised after all were tried."""
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                await sink.send(alerts)
            except Exception as exc:  # each sink gets its alerts even if another fails
                error = error or exc
        if error is not None:
            raise error
