"""The notification log shared by every instance, through one Redis hash.

Each delivered notification writes, per alert it carried, one field
``[integration, group key, fingerprint, status]`` holding when that episode
started, when it was sent and by whom. Every instance keeps a copy in memory,
refreshed at each lease tick, and reads it in two places:

- the dispatcher's dedup decision (:meth:`SharedLog.merged`): what a peer
  already sent counts as sent here, so a standby does not even queue it;
- right before a held notification goes out (:meth:`SharedLog.covers`):
  when a peer sent the same alerts with the same status since it was queued,
  it is not sent again.

Two instances evaluate the same data at slightly different moments, so their
``startsAt`` of one alert differ a little: episodes match when they started
within ``tolerance`` of each other, or when the peer's episode is still
firing as far as its log says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from soulwatch.alerting.message import Notification, Status
from soulwatch.alerting.nflog import LogEntry


@dataclass(frozen=True)
class Sent:
    """One alert of one delivered notification, as the shared log keeps it."""

    starts_at: float
    sent_at: float
    by: str

    def to_json(self) -> str:
        """The hash value."""
        return json.dumps({"s": self.starts_at, "at": self.sent_at, "by": self.by})

    @classmethod
    def from_json(cls, text: str | bytes) -> Sent | None:
        """A value read from Redis; ``None`` for anything malformed (it is skipped)."""
        try:
            data = json.loads(text)
            return cls(float(data["s"]), float(data["at"]), str(data["by"]))
        except (ValueError, KeyError, TypeError):
            return None


#: ``(integration, group key, fingerprint, status)``
LogKey = tuple[str, str, str, str]


def field_of(key: LogKey) -> str:
    """The hash field of ``key``."""
    return json.dumps(list(key), separators=(",", ":"))


def key_of(field: str | bytes) -> LogKey | None:
    """The key a hash field names, ``None`` for anything malformed."""
    try:
        parts = json.loads(field)
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) != 4 or not all(isinstance(p, str) for p in parts):
        return None
    return (parts[0], parts[1], parts[2], parts[3])


def entries_of(n: Notification, *, sent_at: float, by: str) -> dict[str, str]:
    """The hash fields a delivered notification writes."""
    return {
        field_of((n.integration, n.group_key, a.fingerprint, a.status.value)): Sent(
            a.starts_at, sent_at, by
        ).to_json()
        for a in n.alerts
    }


def _episode(text: str) -> tuple[str, float]:
    fingerprint, _, starts = text.rpartition("@")
    return fingerprint, float(starts)


class SharedLog:
    """The in-memory copy of the shared notification log."""

    def __init__(self, *, tolerance: float, freshness: float) -> None:
        self._tolerance = tolerance
        self._freshness = freshness
        self._entries: dict[LogKey, Sent] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self, raw: Mapping[bytes | str, bytes | str]) -> list[str]:
        """Take what Redis holds (the newer of two entries wins); returns malformed fields.

        What the copy knew and Redis no longer holds (a Redis restarted without
        persistence) is kept until :meth:`forget` drops it, so an instance does
        not forget what its peers sent because Redis did.
        """
        bad: list[str] = []
        for field, value in raw.items():
            key, sent = key_of(field), Sent.from_json(value)
            if key is None or sent is None:
                bad.append(field.decode() if isinstance(field, bytes) else field)
                continue
            mine = self._entries.get(key)
            if mine is None or mine.sent_at <= sent.sent_at:
                self._entries[key] = sent
        return bad

    def forget(self, cutoff: float) -> list[str]:
        """Drop entries sent before ``cutoff``; returns their fields (to delete from Redis)."""
        old = [k for k, s in self._entries.items() if s.sent_at < cutoff]
        for key in old:
            del self._entries[key]
        return [field_of(k) for k in old]

    def record(self, fields: Mapping[str, str]) -> None:
        """Add what this instance just wrote (it counts before the next refresh)."""
        for field, value in fields.items():
            key, sent = key_of(field), Sent.from_json(value)
            if key is not None and sent is not None:
                self._entries[key] = sent

    def _sent(
        self, integration: str, group_key: str, fp: str, starts: float, status: Status
    ) -> Sent | None:
        """The peer's delivery of this episode with this status, if it matches.

        Firing: the peer's episode started within the tolerance of this one, or
        earlier and the log never reported it resolved (the same episode, seen
        from an instance that started watching later, or restarted). Resolved:
        the peer said the alert resolved after this episode began, so the
        receiver already knows it is over.
        """
        sent = self._entries.get((integration, group_key, fp, status.value))
        if sent is None:
            return None
        if status is Status.RESOLVED:
            return sent if sent.sent_at >= starts - self._tolerance else None
        if abs(sent.starts_at - starts) <= self._tolerance:
            return sent
        if sent.starts_at < starts:
            resolved = self._entries.get((integration, group_key, fp, Status.RESOLVED.value))
            if resolved is None or resolved.sent_at < sent.sent_at:
                return sent
        return None

    def merged(
        self,
        integration: str,
        group_key: str,
        local: LogEntry | None,
        episodes: Iterable[tuple[str, bool]],
    ) -> LogEntry | None:
        """``local`` with what peers sent of ``episodes`` (``(episode, resolved)`` pairs)."""
        firing: set[str] = set(local.firing) if local else set()
        resolved: set[str] = set(local.resolved) if local else set()
        sent_at = local.sent_at if local else None
        for text, is_resolved in episodes:
            fp, starts = _episode(text)
            told_firing = self._sent(integration, group_key, fp, starts, Status.FIRING)
            told_resolved = (
                self._sent(integration, group_key, fp, starts, Status.RESOLVED)
                if is_resolved
                else None
            )
            if told_resolved is not None:
                resolved.add(text)
                firing.discard(text)
                sent_at = max(sent_at or 0.0, told_resolved.sent_at)
            elif told_firing is not None:
                firing.add(text)
                sent_at = max(sent_at or 0.0, told_firing.sent_at)
        if sent_at is None:
            return None
        return LogEntry(frozenset(firing), frozenset(resolved), sent_at)

    def covers(self, n: Notification, queued_at: float) -> Sent | None:
        """The delivery that already told the receiver what ``n`` says, if any.

        Every alert of ``n`` must have been sent with the same status, for the
        same episode; a firing one no earlier than shortly before ``n`` was
        queued (an older delivery is one a repeat is due after).
        """
        last: Sent | None = None
        for a in n.alerts:
            sent = self._sent(n.integration, n.group_key, a.fingerprint, a.starts_at, a.status)
            if sent is None:
                return None
            if a.status is Status.FIRING and sent.sent_at < queued_at - self._freshness:
                return None
            last = sent if last is None or sent.sent_at > last.sent_at else last
        return last
