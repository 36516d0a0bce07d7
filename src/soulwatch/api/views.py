"""Adapters from the components to the API's views, in Prometheus's and Alertmanager's shapes.

:class:`RuleManagerView` turns the rule manager's groups and alerts into
``/api/v1/rules`` and ``/api/v1/alerts`` JSON; :class:`ScrapeView` the scrape
targets into ``/api/v1/targets``; :class:`OutboxView` the receivers and
their last delivery errors; :class:`SilenceStoreView` the silence store into
Alertmanager v2 silences.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import ValidationError

from soulwatch.alerting.alertmanagers import QUEUE_CAPACITY
from soulwatch.alerting.config import AlertingConfig
from soulwatch.alerting.notifiers.factory import integration_id
from soulwatch.alerting.outbox import Outbox, RowState
from soulwatch.alerting.silences import PostableSilence, SilenceStore
from soulwatch.api.context import JSONDict, SilenceNotFoundError
from soulwatch.api.http import format_value
from soulwatch.config import SoulwatchConfig
from soulwatch.duration import format_duration
from soulwatch.exceptions import ConfigError
from soulwatch.rules.evaluator import RESEND_DELAY_S, RuleManager, RuleStatus
from soulwatch.rules.state import ActiveAlert
from soulwatch.sources.base import SourceStatus
from soulwatch.sources.scrape.parse import MetricMetadata
from soulwatch.sources.scrape.target import TargetStatus

_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_number(value: float) -> float | int:
    """A float as Go's JSON writes it: ``5`` rather than ``5.0`` for a whole number."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def rfc3339(t: float | None) -> str:
    """A Unix time as Prometheus's API writes times (``Z``, no offset)."""
    if t is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def format_exp(value: float) -> str:
    """Go's ``FormatFloat(v, 'e', -1, 64)``: how Prometheus writes an alert's value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits).rstrip("0") or "0"
    exp = exponent + len(digits) - 1 if text != "0" else 0
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"


def _alert(alert: ActiveAlert) -> JSONDict:
    return {
        "labels": alert.labels.to_dict(),
        "annotations": dict(alert.annotations),
        "state": alert.state.value,
        "activeAt": rfc3339(alert.active_at),
        "value": format_exp(alert.value),
    }


def _rule(rule: RuleStatus) -> JSONDict:
    common = {
        "name": rule.name,
        "query": rule.expr,
        "labels": rule.labels,
        "health": rule.health.value,
        "evaluationTime": rule.evaluation_seconds,
        "lastEvaluation": rfc3339(rule.last_evaluation),
    }
    if rule.last_error:
        common["lastError"] = rule.last_error
    if rule.kind != "alert":
        # Prometheus omits a recording rule's labels when there are none.
        if not rule.labels:
            del common["labels"]
        return {**common, "type": "recording"}
    states = {a.state.value for a in rule.alerts}
    state = "firing" if "firing" in states else "pending" if "pending" in states else "inactive"
    return {
        "state": state,
        **common,
        "duration": go_number(rule.for_s),
        "keepFiringFor": go_number(rule.keep_firing_for_s),
        "annotations": rule.annotations,
        "alerts": [_alert(a) for a in rule.alerts],
        "type": "alerting",
    }


class RuleManagerView:
    """``/api/v1/rules``, ``/api/v1/alerts`` and alert history from a :class:`RuleManager`."""

    def __init__(
        self, manager: RuleManager, file_base: Callable[[], str | None] = lambda: None
    ) -> None:
        self.manager = manager
        self._file_base = file_base

    def _file(self, path: str) -> str:
        """A rule file as Prometheus shows it: joined onto the config file's directory as
        that was given (relative when the config was named relatively)."""
        base = self._file_base()
        if base is None or not os.path.isabs(path):
            return path
        given_dir, absolute_dir = os.path.split(base)[0], os.path.dirname(os.path.abspath(base))
        if os.path.isabs(given_dir):
            return path
        rel = os.path.relpath(path, absolute_dir)
        return os.path.normpath(os.path.join(given_dir, rel))

    def rule_groups(self) -> list[JSONDict]:
        """Groups with their rules, in Prometheus's shape."""
        return [
            {
                "name": g.name,
                "file": self._file(g.file),
                "rules": [_rule(r) for r in g.rules],
                "interval": go_number(g.interval_s),
                "limit": 0,
                "evaluationTime": g.evaluation_seconds,
                "lastEvaluation": rfc3339(g.last_evaluation),
            }
            for g in self.manager.groups()
        ]

    def alerts(self) -> list[JSONDict]:
        """Pending and firing alerts."""
        return [_alert(a) for a in self.manager.active_alerts()]

    def alert_history(self, limit: int) -> list[JSONDict]:
        """Transitions, newest first."""
        return [
            {
                "at": rfc3339(t.t),
                "rule": t.rule,
                "alertname": t.alertname,
                "labels": t.labels.to_dict(),
                "fingerprint": t.fingerprint,
                "from": t.from_state.value,
                "to": t.to_state.value,
                "value": format_value(t.value),
            }
            for t in self.manager.history(limit=limit)
        ]


def _target(status: TargetStatus, interval: float, timeout: float) -> JSONDict:
    labels = dict(status.labels)
    return {
        "discoveredLabels": labels,
        "labels": labels,
        "scrapePool": labels.get("job", ""),
        "scrapeUrl": status.url,
        "globalUrl": status.url,
        "lastError": status.last_error,
        "lastScrape": rfc3339(status.last_run),
        "lastScrapeDuration": status.duration or 0.0,
        "health": status.health.value,
        "scrapeInterval": format_duration(interval),
        "scrapeTimeout": format_duration(timeout),
    }


class ScrapeView:
    """``/api/v1/targets``, probes and the scraped metric metadata from the running sources."""

    def __init__(
        self,
        targets: Callable[[], Sequence[tuple[TargetStatus, float, float]]],
        probes: Callable[[], Sequence[tuple[str, SourceStatus]]] = lambda: (),
        metadata: Callable[
            [], Sequence[tuple[Mapping[str, str], Mapping[str, MetricMetadata]]]
        ] = lambda: (),
    ) -> None:
        self._targets = targets
        self._probes = probes
        self._metadata = metadata

    def targets_metadata(self) -> list[tuple[dict[str, str], Mapping[str, MetricMetadata]]]:
        """``(target labels, {family: metadata})`` per target; the labels without the
        ``__``-prefixed ones, as Prometheus shows a target."""
        return [
            ({n: v for n, v in labels.items() if not n.startswith("__")}, meta)
            for labels, meta in self._metadata()
        ]

    def targets(self) -> list[JSONDict]:
        """Active targets with health and last error."""
        return [_target(s, i, t) for s, i, t in self._targets()]

    def probes(self) -> list[JSONDict]:
        """Probes with health and last error."""
        return [
            {
                "name": name,
                "health": s.health.value,
                "lastError": s.last_error,
                "lastProbe": rfc3339(s.last_run),
                "duration": s.duration,
            }
            for name, s in self._probes()
        ]


class OutboxView:
    """Receivers with each integration's last delivery error."""

    def __init__(self, routing: AlertingConfig, outbox: Outbox) -> None:
        self.routing = routing
        self.outbox = outbox

    def receivers(self) -> list[JSONDict]:
        """``{name, integrations: [{id, type, lastError, lastErrorAt, failing, pending}]}``.

        ``lastError`` is the error of a notification still being retried if
        there is one, else the last final failure; ``pending`` counts
        notifications not yet delivered.
        """
        errors = self.outbox.integration_errors()
        retrying: dict[str, str] = {}
        pending: dict[str, int] = {}
        for row in self.outbox.rows(RowState.PENDING):
            pending[row.integration] = pending.get(row.integration, 0) + 1
            if row.last_error:
                retrying[row.integration] = row.last_error
        out = []
        for receiver in self.routing.receivers:
            integrations = []
            for kind, index, _ in receiver.integrations():
                key = integration_id(receiver.name, kind, index)
                error, at, failing = errors.get(key, ("", None, False))
                integrations.append(
                    {
                        "id": key,
                        "type": kind,
                        "lastError": retrying.get(key, error),
                        "lastErrorAt": rfc3339(at) if at else None,
                        "failing": failing or key in retrying,
                        "pending": pending.get(key, 0),
                    }
                )
            out.append({"name": receiver.name, "integrations": integrations})
        return out


class SilenceStoreView:
    """The silence store behind the Alertmanager v2 endpoints."""

    def __init__(self, store: SilenceStore) -> None:
        self.store = store

    def list_silences(self) -> list[JSONDict]:
        """Every silence."""
        return [s.api_json() for s in self.store.list()]

    def get_silence(self, silence_id: str) -> JSONDict:
        """One silence."""
        try:
            return self.store.get(silence_id).api_json()
        except KeyError:
            raise SilenceNotFoundError(silence_id) from None

    def put_silence(self, postable: JSONDict) -> str:
        """Create or update."""
        try:
            silence = PostableSilence.model_validate(postable)
            return self.store.create(silence)
        except KeyError:
            raise SilenceNotFoundError(str(postable.get("id"))) from None
        except (ConfigError, ValidationError) as exc:
            raise ValueError(str(exc)) from None

    def expire_silence(self, silence_id: str) -> None:
        """Expire now."""
        try:
            self.store.expire(silence_id)
        except KeyError:
            raise SilenceNotFoundError(silence_id) from None


class MonitorRuntime:
    """``status/runtimeinfo`` and ``status/flags`` of one running monitor."""

    def __init__(
        self,
        *,
        started_at: float,
        config: Callable[[], SoulwatchConfig | None],
        last_reload: Callable[[], tuple[bool, float]],
        storage_path: str,
    ) -> None:
        self._started_at = started_at
        self._config = config
        self._last_reload = last_reload
        self._storage_path = storage_path

    def runtime_info(self) -> JSONDict:
        """Prometheus's runtime-info keys, filled with what soulwatch has in their place
        (threads for goroutines, CPUs for ``GOMAXPROCS``)."""
        ok, at = self._last_reload()
        config = self._config()
        retention = format_duration(config.storage.retention_time) if config else ""
        return {
            "startTime": rfc3339(self._started_at),
            "CWD": os.getcwd(),
            "reloadConfigSuccess": ok,
            "lastConfigTime": rfc3339(float(int(at))),
            "corruptionCount": 0,
            "goroutineCount": threading.active_count(),
            "GOMAXPROCS": os.cpu_count() or 1,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": retention,
        }

    def flags(self) -> dict[str, str]:
        """The settings that have a Prometheus flag, under that flag's name."""
        config = self._config()
        if config is None:
            return {}
        return {
            "alertmanager.notification-queue-capacity": str(QUEUE_CAPACITY),
            "config.file": config.source_as_given or str(config.source or ""),
            "query.lookback-delta": format_duration(config.api.lookback_delta),
            "query.timeout": format_duration(config.api.query_timeout),
            "rules.alert.resend-delay": format_duration(RESEND_DELAY_S),
            "storage.tsdb.path": self._storage_path,
            "storage.tsdb.retention.time": format_duration(config.storage.retention_time),
            "web.enable-lifecycle": "true",
            "web.external-url": config.external_url,
            "web.listen-address": config.listen,
        }
