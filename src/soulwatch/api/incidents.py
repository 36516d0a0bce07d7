"""The :class:`~soulwatch.api.context.IncidentsView` of a running dispatcher and outbox.

Groups come from the dispatcher as routing formed them; each alert is marked
silenced (by which silences) or inhibited as the dispatcher would judge it
now. Notifications are the outbox's rows; actions the auto-recovery audit
log; acknowledgements the :class:`~soulwatch.alerting.acks.AckStore`.
"""

from __future__ import annotations

from collections.abc import Callable

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.actions import ActionRunner
from soulwatch.alerting.config import AlertingConfig
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.inhibit import Inhibitor
from soulwatch.alerting.message import group_id
from soulwatch.alerting.outbox import Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.context import JSONDict
from soulwatch.api.views import rfc3339
from soulwatch.clock import Clock


class DispatchIncidentsView:
    """Reads the dispatcher (which a reload may replace: hence the callables)."""

    def __init__(
        self,
        *,
        dispatcher: Callable[[], Dispatcher | None],
        routing: Callable[[], AlertingConfig | None],
        outbox: Outbox,
        silences: SilenceStore,
        acks: AckStore,
        actions: Callable[[], ActionRunner | None],
        clock: Clock,
    ) -> None:
        self._dispatcher = dispatcher
        self._routing = routing
        self._outbox = outbox
        self._silences = silences
        self._acks = acks
        self._actions = actions
        self._clock = clock

    def alert_groups(self) -> list[JSONDict]:
        """Every aggregation group with its alerts' mute state and acknowledgement."""
        dispatcher = self._dispatcher()
        routing = self._routing()
        if dispatcher is None:
            return []
        now = self._clock.time()
        inhibitor = Inhibitor(routing.inhibit_rules if routing else [])
        firing = [a for a in dispatcher.alerts() if not a.is_resolved(now)]
        out = []
        for key, receiver, alerts in dispatcher.groups():
            ack = self._acks.get(key)
            out.append(
                {
                    "id": group_id(key),
                    "key": key,
                    "receiver": receiver,
                    "labels": _group_labels(key),
                    "ack": None
                    if ack is None
                    else {"by": ack.by, "comment": ack.comment, "at": rfc3339(ack.at)},
                    "alerts": [
                        {
                            "fingerprint": a.fingerprint,
                            "labels": a.labels.to_dict(),
                            "annotations": dict(a.annotations),
                            "startsAt": rfc3339(a.starts_at),
                            "status": "resolved" if a.is_resolved(now) else "firing",
                            "silencedBy": self._silences.mutes(a.labels, now),
                            "inhibited": not a.is_resolved(now)
                            and inhibitor.is_inhibited(a, firing, now),
                        }
                        for a in alerts
                    ],
                }
            )
        return out

    def notifications(
        self, *, group_id: str | None = None, fingerprint: str | None = None, limit: int = 200
    ) -> list[JSONDict]:
        """Outbox rows about a group or an alert (all when neither is given), newest first."""
        out: list[JSONDict] = []
        for row in reversed(self._outbox.rows()):
            n = row.notification
            if group_id is not None and n.group_id != group_id:
                continue
            if fingerprint is not None and all(a.fingerprint != fingerprint for a in n.alerts):
                continue
            out.append(
                {
                    "id": row.id,
                    "receiver": n.receiver,
                    "integration": row.integration,
                    "groupId": n.group_id,
                    "status": n.status.value,
                    "state": row.state.value,
                    "attempts": row.attempts,
                    "lastError": row.last_error,
                    "createdAt": rfc3339(row.created_at),
                    "deliveredAt": rfc3339(row.delivered_at) if row.delivered_at else None,
                    "alerts": [
                        {"fingerprint": a.fingerprint, "status": a.status.value, "labels": a.labels}
                        for a in n.alerts
                    ],
                }
            )
            if len(out) >= limit:
                break
        return out

    def actions(self, fingerprint: str | None = None, limit: int = 100) -> list[JSONDict]:
        """Auto-recovery runs, newest first."""
        runner = self._actions()
        if runner is None:
            return []
        runs = runner.audit(limit=1000 if fingerprint else limit)
        return [
            {
                "action": r.action,
                "fingerprint": r.fingerprint,
                "alertname": r.alertname,
                "at": rfc3339(r.started_at),
                "outcome": r.outcome.value,
                "detail": r.detail,
            }
            for r in runs
            if fingerprint is None or r.fingerprint == fingerprint
        ][:limit]

    def acknowledgements(self, since: float) -> list[JSONDict]:
        """Acknowledgements since ``since``, oldest first, with their group's labels."""
        return [
            {
                "id": ack.group_id,
                "labels": _group_labels(ack.group_key),
                "by": ack.by,
                "comment": ack.comment,
                "at": rfc3339(ack.at),
            }
            for ack in self._acks.history(since)
        ]

    def acknowledge(self, group_id: str, by: str, comment: str) -> JSONDict:
        """Acknowledge the current group whose id is ``group_id``."""
        dispatcher = self._dispatcher()
        keys = [key for key, _, _ in dispatcher.groups()] if dispatcher else []
        key = next((k for k in keys if _id(k) == group_id), None)
        if key is None:
            raise KeyError(group_id)
        ack = self._acks.acknowledge(key, by, comment)
        return {"id": group_id, "by": ack.by, "comment": ack.comment, "at": rfc3339(ack.at)}


def _id(key: str) -> str:
    return group_id(key)


def _group_labels(key: str) -> dict[str, str]:
    """The ``{a="b", ...}`` part at the end of a group key, as a dict."""
    _, _, text = key.rpartition(":{")
    out: dict[str, str] = {}
    for part in text.rstrip("}").split('", '):
        name, sep, value = part.partition('="')
        if sep:
            out[name] = value.rstrip('"')
    return out
