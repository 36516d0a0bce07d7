"""What the HTTP API reads and writes, injected by the service.

The API holds no state of its own: :class:`ApiContext` hands it the storage,
the query engine, the heartbeat monitor and small read-only views of the
other components (rules, targets, receivers, silences). Each view is a
:class:`~typing.Protocol` so the service can adapt whatever a component
exposes, and tests can pass real components or leave a view out (the
endpoint then answers with an empty list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry

from soulwatch.alerting.intake import AlertQuery
from soulwatch.clock import Clock, SystemClock
from soulwatch.config import ApiConfig, AuthConfig, SoulwatchConfig
from soulwatch.otlp.intake import OtlpIntake
from soulwatch.promql.values import QueryEngine
from soulwatch.rum.intake import RumIntake
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.heartbeats import HeartbeatMonitor
from soulwatch.sources.scrape.parse import MetricMetadata
from soulwatch.tsdb.storage import SeriesIndex, Storage

JSONDict = dict[str, Any]


@runtime_checkable
class RulesView(Protocol):
    """Rule groups and alerts, already in the shapes of Prometheus's API."""

    def rule_groups(self) -> list[JSONDict]:
        """``data.groups`` of ``/api/v1/rules``."""
        ...

    def alerts(self) -> list[JSONDict]:
        """``data.alerts`` of ``/api/v1/alerts`` (pending and firing)."""
        ...

    def alert_history(self, limit: int) -> list[JSONDict]:
        """State transitions, newest first: ``{alertname, labels, from, to, at}``."""
        ...


@runtime_checkable
class TargetsView(Protocol):
    """Scrape targets and probes with their last error."""

    def targets(self) -> list[JSONDict]:
        """``data.activeTargets`` of ``/api/v1/targets``."""
        ...

    def probes(self) -> list[JSONDict]:
        """Probes: ``{name, module, target, health, lastError, lastProbe, duration}``."""
        ...


@runtime_checkable
class ReceiversView(Protocol):
    """Notification receivers with their delivery status."""

    def receivers(self) -> list[JSONDict]:
        """``{name, integrations: [{id, type, lastError, lastErrorAt, failing}]}``."""
        ...


@runtime_checkable
class MetadataView(Protocol):
    """The metric metadata (``# TYPE``, ``# HELP``, ``# UNIT``) scraped from each target."""

    def targets_metadata(self) -> list[tuple[dict[str, str], Mapping[str, MetricMetadata]]]:
        """``(target labels, {family: metadata})`` of every scrape target."""
        ...


@runtime_checkable
class RuntimeView(Protocol):
    """What ``/api/v1/status/runtimeinfo`` and ``status/flags`` report."""

    def runtime_info(self) -> JSONDict:
        """Start time, working directory, last reload, retention (Prometheus's keys)."""
        ...

    def flags(self) -> dict[str, str]:
        """The effective settings under Prometheus's command-line flag names."""
        ...


@runtime_checkable
class AlertIntakeView(Protocol):
    """Alerts from other rulers (Alertmanager's API v2) into soulwatch's routing."""

    async def post_alerts(self, alerts: Sequence[object]) -> list[str]:
        """Route the valid ``postableAlert`` objects; one error message per invalid one."""
        ...

    def alerts(self, query: AlertQuery) -> list[JSONDict]:
        """Unresolved alerts known to the router, as ``gettableAlert``."""
        ...

    def groups(self, query: AlertQuery) -> list[JSONDict]:
        """Aggregation groups, as ``alertGroup``."""
        ...

    def receivers(self) -> list[JSONDict]:
        """The receivers, as ``[{"name": ...}]``."""
        ...

    def status(self) -> JSONDict:
        """``alertmanagerStatus``: config, cluster, version, uptime."""
        ...


class SilenceNotFoundError(KeyError):
    """No silence has that id."""


@runtime_checkable
class SilencesView(Protocol):
    """Silences in Alertmanager's API v2 shapes (``GettableSilence``)."""

    def list_silences(self) -> list[JSONDict]:
        """Every silence (active, pending and expired)."""
        ...

    def get_silence(self, silence_id: str) -> JSONDict:
        """One silence; raises :class:`SilenceNotFoundError`."""
        ...

    def put_silence(self, postable: JSONDict) -> str:
        """Create, or replace when ``id`` is set; returns the id.

        Raises ``ValueError`` for an invalid silence and
        :class:`SilenceNotFoundError` for an unknown ``id``.
        """
        ...

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now; raises :class:`SilenceNotFoundError`."""
        ...


@runtime_checkable
class IncidentsView(Protocol):
    """What routing made of the alerts: groups, notifications, actions, acknowledgements."""

    def alert_groups(self) -> list[JSONDict]:
        """Aggregation groups: ``{id, key, receiver, labels, alerts, ack}``.

        Each alert: ``{fingerprint, labels, annotations, startsAt, status,
        silencedBy, inhibited}``; ``ack`` is ``{by, comment, at}`` or ``None``.
        """
        ...

    def notifications(
        self, *, group_id: str | None = None, fingerprint: str | None = None, limit: int = 200
    ) -> list[JSONDict]:
        """Outbox rows, newest first: ``{id, receiver, integration, groupId, status, state,
        attempts, lastError, createdAt, deliveredAt, alerts}``."""
        ...

    def actions(self, fingerprint: str | None = None, limit: int = 100) -> list[JSONDict]:
        """Auto-recovery runs, newest first: ``{action, fingerprint, alertname, at, outcome,
        detail}``."""
        ...

    def acknowledgements(self, since: float) -> list[JSONDict]:
        """Acknowledgements since ``since``, oldest first: ``{id, labels, by, comment, at}``
        (``labels``: the group's labels)."""
        ...

    def acknowledge(self, group_id: str, by: str, comment: str) -> JSONDict:
        """Acknowledge a group (stops its repeats); raises ``KeyError`` for an unknown group."""
        ...


ReloadHook = Callable[[], Awaitable[None]]


@dataclass
class ApiContext:
    """Everything the API serves from."""

    storage: Storage
    engine: QueryEngine
    clock: Clock = field(default_factory=SystemClock)
    api: ApiConfig = field(default_factory=ApiConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    heartbeats: HeartbeatMonitor | None = None
    rules: RulesView | None = None
    targets: TargetsView | None = None
    receivers: ReceiversView | None = None
    silences: SilencesView | None = None
    incidents: IncidentsView | None = None
    reload: ReloadHook | None = None
    config: SoulwatchConfig | None = None
    ready: Callable[[], bool] = lambda: True
    metrics: Callable[[], bytes] | None = None
    health: Callable[[], JSONDict] | None = None
    external_labels: Sequence[tuple[str, str]] = ()
    rum: RumIntake | None = None
    otlp: OtlpIntake | None = None
    metadata: MetadataView | None = None
    runtime: RuntimeView | None = None
    alert_intake: AlertIntakeView | None = None
    alertmanager_urls: Callable[[], list[str]] = lambda: []
    #: Where queries and storage reads run: the monitor's runner (inline under a simulated clock).
    runner: BlockingRunner = run_in_thread
    #: The HA state (``/api/v1/status/ha``); ``None`` when the monitor runs alone.
    ha: Callable[[], JSONDict] | None = None
    #: The monitor's own metrics (``/metrics``), where the API adds its gauges once served.
    registry: CollectorRegistry | None = None
    #: Where series and label listings are read when not from :attr:`storage`
    #: (ruler mode: the remote store's API).
    index: SeriesIndex | None = None

    @property
    def series_index(self) -> SeriesIndex:
        """What ``/api/v1/series``, ``labels``, ``label/<name>/values`` and Explore's
        completion list: :attr:`index`, or else the storage."""
        return self.index if self.index is not None else self.storage

    def configure(self, config: SoulwatchConfig) -> None:
        """Serve under a reloaded config: its tokens, API limits and settings."""
        self.auth = config.auth
        self.api = config.api
        self.config = config
