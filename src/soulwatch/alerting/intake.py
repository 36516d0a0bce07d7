"""Alerts from other rulers, through Alertmanager's API v2, into soulwatch's routing.

A Prometheus, vmalert or Mimir ruler that points its ``alertmanagers`` at
soulwatch posts ``postableAlert`` lists; :class:`DispatcherIntake` validates
each alert as Alertmanager does (a label is required, names must be valid,
``endsAt`` not before ``startsAt``; empty labels are dropped; a missing
``startsAt`` is now), and hands the valid ones to the running
:class:`~soulwatch.alerting.dispatcher.Dispatcher` through ``send`` — the
same entry point soulwatch's own rules use, so grouping, inhibition,
silences and the durable outbox apply alike. An alert without ``endsAt``
resolves ``resolve_timeout`` after it was last received, as in Alertmanager.

It also answers the read side in Alertmanager's shapes: ``gettableAlert``
with receivers and silenced/inhibited status, ``alertGroup``, and
``alertmanagerStatus`` (the routing configuration with secrets hidden, a
cluster that is ``disabled``: soulwatch runs alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from soulwatch import __version__
from soulwatch.alerting.config import AlertingConfig
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.inhibit import Inhibitor
from soulwatch.alerting.silences import SilenceStore
from soulwatch.alerts import Alert
from soulwatch.clock import Clock
from soulwatch.tsdb.model import Labels, Matcher

JSONDict = dict[str, Any]
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def am_time(t: float) -> str:
    """A time as Alertmanager's API writes it (RFC 3339, milliseconds, ``Z``)."""
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class AlertingUnavailableError(RuntimeError):
    """No routing is configured, so there is nothing to deliver alerts with."""


class PostableAlert(BaseModel):
    """Alertmanager's ``postableAlert``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")


def _unix(t: datetime | None) -> float | None:
    # Go clients send the zero time (year 1) for "not set".
    if t is None or t.year <= 1:
        return None
    if t.tzinfo is None:
        raise ValueError("a time must carry a time zone (RFC 3339)")
    return t.timestamp()


def to_alert(raw: object, now: float) -> Alert:
    """One posted alert as an :class:`Alert`; ``ValueError`` says what is wrong."""
    try:
        posted = PostableAlert.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "alert"
        raise ValueError(f"{where}: {first['msg']}") from None
    labels = {k: v for k, v in posted.labels.items() if v}
    if not labels:
        raise ValueError("at least one label pair required")
    for name in labels:
        if not _LABEL_NAME.match(name):
            raise ValueError(f'invalid label set: invalid name "{name}"')
    for name in posted.annotations:
        if not _LABEL_NAME.match(name):
            raise ValueError(f'invalid annotations: invalid name "{name}"')
    starts = _unix(posted.starts_at)
    ends = _unix(posted.ends_at)
    if starts is None:
        starts = now if ends is None or ends > now else ends
    if ends is not None and ends < starts:
        raise ValueError("start time must be before end time")
    return Alert(
        labels=Labels.of(**labels),
        annotations={k: v for k, v in posted.annotations.items() if v},
        starts_at=starts,
        ends_at=ends,
        generator_url=posted.generator_url,
    )


@dataclass(frozen=True)
class AlertQuery:
    """The filters of ``GET /api/v2/alerts`` (and ``/alerts/groups``)."""

    active: bool = True
    silenced: bool = True
    inhibited: bool = True
    unprocessed: bool = True
    matchers: Sequence[Matcher] = ()
    receiver: re.Pattern[str] | None = None


@dataclass
class _Shown:
    alert: Alert
    fingerprint: str
    ends_at: float
    updated_at: float
    receivers: list[str]
    silenced_by: list[str] = field(default_factory=list)
    inhibited_by: list[str] = field(default_factory=list)

    def gettable(self) -> JSONDict:
        suppressed = bool(self.silenced_by or self.inhibited_by)
        out: JSONDict = {
            "annotations": dict(self.alert.annotations),
            "endsAt": am_time(self.ends_at),
            "fingerprint": self.fingerprint,
            "receivers": [{"name": n} for n in self.receivers],
            "startsAt": am_time(self.alert.starts_at),
            "status": {
                "inhibitedBy": self.inhibited_by,
                "silencedBy": self.silenced_by,
                "state": "suppressed" if suppressed else "active",
            },
            "updatedAt": am_time(self.updated_at),
            "labels": self.alert.labels.to_dict(),
        }
        if self.alert.generator_url:  # Alertmanager omits an empty one
            out["generatorURL"] = self.alert.generator_url
        return out


class DispatcherIntake:
    """The Alertmanager v2 alerts and status endpoints over the running dispatcher.

    ``dispatcher`` and ``routing`` are read on every call: a reload replaces both.
    """

    def __init__(
        self,
        *,
        dispatcher: Callable[[], Dispatcher | None],
        routing: Callable[[], AlertingConfig | None],
        silences: SilenceStore | None,
        clock: Clock,
        started_at: float,
        redact: Callable[[Any], Any],
    ) -> None:
        self._dispatcher = dispatcher
        self._routing = routing
        self._silences = silences
        self._clock = clock
        self._started_at = started_at
        self._redact = redact

    async def post_alerts(self, alerts: Sequence[object]) -> list[str]:
        """Route the valid alerts; return one message per invalid one."""
        dispatcher = self._dispatcher()
        if dispatcher is None:
            raise AlertingUnavailableError("alerting is not configured: no route to deliver to")
        now = self._clock.time()
        valid: list[Alert] = []
        errors: list[str] = []
        for raw in alerts:
            try:
                valid.append(to_alert(raw, now))
            except ValueError as exc:
                errors.append(str(exc))
        if valid:
            await dispatcher.send(valid)
        return errors

    def _shown(self, query: AlertQuery) -> list[_Shown]:
        dispatcher, routing = self._dispatcher(), self._routing()
        if dispatcher is None or routing is None:
            return []
        now = self._clock.time()
        timeout = routing.global_.resolve_timeout
        live: list[_Shown] = []
        for alert in dispatcher.alerts():
            fp = alert.fingerprint
            updated = dispatcher.updated_at(fp) or alert.starts_at
            ends = alert.ends_at if alert.ends_at is not None else updated + timeout
            if ends <= now:
                continue  # resolved: Alertmanager lists only unresolved alerts
            names = list(
                dict.fromkeys(n.options.receiver for n in dispatcher.tree.match(alert.labels))
            )
            live.append(_Shown(alert, fp, ends, updated, names))
        firing = [s.alert for s in live]
        inhibitor = Inhibitor(routing.inhibit_rules)
        out = []
        for shown in live:
            if self._silences is not None:
                shown.silenced_by = self._silences.mutes(shown.alert.labels, now)
            source = inhibitor.inhibited_by(shown.alert, firing, now)
            shown.inhibited_by = [source.fingerprint] if source is not None else []
            if _wanted(shown, query):
                out.append(shown)
        return sorted(out, key=lambda s: s.fingerprint)

    def alerts(self, query: AlertQuery) -> list[JSONDict]:
        """Unresolved alerts matching ``query``, as ``gettableAlert``, by fingerprint."""
        return [s.gettable() for s in self._shown(query)]

    def groups(self, query: AlertQuery) -> list[JSONDict]:
        """The aggregation groups of the alerts matching ``query``, as ``alertGroup``."""
        dispatcher = self._dispatcher()
        if dispatcher is None:
            return []
        groups: dict[tuple[str, Labels], tuple[str, list[JSONDict]]] = {}
        for shown in self._shown(query):
            for node in dispatcher.tree.match(shown.alert.labels):
                receiver = node.options.receiver
                if query.receiver is not None and not query.receiver.fullmatch(receiver):
                    continue
                key = (node.key, node.group_labels(shown.alert.labels))
                groups.setdefault(key, (receiver, []))[1].append(shown.gettable())
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][1], kv[1][0]))
        return [
            {"alerts": alerts, "labels": labels.to_dict(), "receiver": {"name": receiver}}
            for (_, labels), (receiver, alerts) in ordered
        ]

    def receivers(self) -> list[JSONDict]:
        """``[{"name": ...}]`` of the configured receivers."""
        routing = self._routing()
        return [{"name": r.name} for r in routing.receivers] if routing else []

    def status(self) -> JSONDict:
        """``alertmanagerStatus``."""
        routing = self._routing()
        original = ""
        if routing is not None:
            data = self._redact(routing)
            original = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return {
            "cluster": {"name": "", "peers": [], "status": "disabled"},
            "config": {"original": original},
            "uptime": am_time(self._started_at),
            "versionInfo": {
                "branch": "",
                "buildDate": "",
                "buildUser": "soulwatch",
                "goVersion": "",
                "revision": "",
                "version": __version__,
            },
        }


def _wanted(shown: _Shown, query: AlertQuery) -> bool:
    if shown.silenced_by and not query.silenced:
        return False
    if shown.inhibited_by and not query.inhibited:
        return False
    if not (shown.silenced_by or shown.inhibited_by) and not query.active:
        return False
    if query.receiver is not None and not any(query.receiver.fullmatch(n) for n in shown.receivers):
        return False
    labels = shown.alert.labels
    return all(m.matches(labels.get(m.name)) for m in query.matchers)
