"""Silences, stored in SQLite, in Alertmanager's API v2 shapes.

The API layer mounts ``POST /api/v2/silences`` (:meth:`SilenceStore.create`),
``GET /api/v2/silences`` (:meth:`SilenceStore.list`), ``GET /api/v2/silence/{id}``
(:meth:`SilenceStore.get`) and ``DELETE /api/v2/silence/{id}``
(:meth:`SilenceStore.expire`) on top of this store, using
:class:`PostableSilence` and :class:`GettableSilence` as bodies.

soulwatch adds recurring maintenance windows: a silence with a ``schedule``
(Alertmanager time interval specs) mutes only while the schedule contains the
current time, between ``startsAt`` and ``endsAt``.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from soulwatch.alerting.config import TimeIntervalSpec
from soulwatch.alerting.store_writes import StoreWrites
from soulwatch.alerting.timeintervals import interval_contains, next_change
from soulwatch.clock import Clock
from soulwatch.exceptions import ConfigError, StorageError
from soulwatch.tsdb.model import Labels, Matcher, MatchType


class SilenceState(Enum):
    """Alertmanager's silence states."""

    EXPIRED = "expired"
    ACTIVE = "active"
    PENDING = "pending"


class SilenceMatcher(BaseModel):
    """One matcher of a silence, as in Alertmanager's API v2."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    value: str
    is_regex: bool = Field(alias="isRegex")
    is_equal: bool = Field(True, alias="isEqual")

    def to_matcher(self) -> Matcher:
        """The equivalent label matcher; ``ValueError`` naming it if its regex is invalid."""
        if self.is_regex:
            kind = MatchType.REGEX if self.is_equal else MatchType.NOT_REGEX
            try:
                return Matcher(kind, self.name, self.value)
            except re.error as exc:
                raise ValueError(
                    f"matcher {self.name}{kind.value}{self.value!r}: invalid regular"
                    f" expression: {exc}"
                ) from None
        return Matcher(
            MatchType.EQUAL if self.is_equal else MatchType.NOT_EQUAL, self.name, self.value
        )

    @classmethod
    def from_matcher(cls, m: Matcher) -> SilenceMatcher:
        """The API shape of a label matcher."""
        return cls(
            name=m.name,
            value=m.value,
            isRegex=m.type in (MatchType.REGEX, MatchType.NOT_REGEX),
            isEqual=m.type in (MatchType.EQUAL, MatchType.REGEX),
        )


class PostableSilence(BaseModel):
    """The body of ``POST /api/v2/silences``."""

    model_config = ConfigDict(populate_by_name=True)

    id: str | None = None
    matchers: list[SilenceMatcher]
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str
    schedule: list[TimeIntervalSpec] | None = None

    @field_validator("matchers")
    @classmethod
    def _not_empty(cls, value: list[SilenceMatcher]) -> list[SilenceMatcher]:
        if not value:
            raise ValueError("a silence needs at least one matcher")
        for m in value:
            m.to_matcher()
        if all(m.to_matcher().matches("") for m in value):
            raise ValueError("at least one matcher must not match the empty string")
        return value


class SilenceStatus(BaseModel):
    """``status`` of a gettable silence."""

    state: SilenceState


class GettableSilence(PostableSilence):
    """An element of ``GET /api/v2/silences``."""

    id: str
    status: SilenceStatus
    updated_at: datetime = Field(alias="updatedAt")

    def api_json(self) -> dict[str, object]:
        """The Alertmanager v2 JSON object (``schedule`` only when recurring)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


#: Columns of the ``silences`` table (a row shared with peers has all of them).
_COLUMNS = 8


class SilenceStore:
    """Silences in a SQLite database; safe to share between the API and the dispatcher."""

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        *,
        max_duration: float = 0.0,
        retention: float = 5 * 86400.0,
    ) -> None:
        self._clock = clock
        self.max_duration = max_duration
        self.retention = retention
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL,"
                " starts_at REAL NOT NULL, ends_at REAL NOT NULL, created_by TEXT NOT NULL,"
                " comment TEXT NOT NULL, schedule TEXT, updated_at REAL NOT NULL)"
            )
            self._writes = StoreWrites("silences", self._db, self._lock, Path(path))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open silence store {path}: {exc}") from exc
        self._listeners: list[Callable[[], None]] = []

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @property
    def last_error(self) -> str | None:
        """Why the last write failed (a full disk), ``None`` once one works again."""
        return self._writes.last_error

    def recheck(self) -> None:
        """While writes fail, find out whether they work again (see :mod:`.store_writes`)."""
        self._writes.recheck(self._clock.time())

    def configure(self, *, max_duration: float, retention: float) -> None:
        """Apply reloaded limits: the longest silence accepted, how long expired ones are kept."""
        self.max_duration = max_duration
        self.retention = retention

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every create or expire (the dispatcher re-checks mutes)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (a dispatcher replaced on reload)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def create(self, silence: PostableSilence) -> str:
        """Create a silence (or update the one with ``silence.id``); returns its id.

        ``StorageError`` (naming the cause) when it cannot be written."""
        now = self._clock.time()
        start, end = silence.starts_at.timestamp(), silence.ends_at.timestamp()
        if end <= start:
            raise ConfigError("a silence must end after it starts")
        if end <= now:
            raise ConfigError("a silence must not end in the past")
        if self.max_duration and end - max(start, now) > self.max_duration:
            raise ConfigError(
                f"a silence may last at most {self.max_duration:g}s (silences.max_duration);"
                f" this one lasts {end - max(start, now):g}s"
            )
        if silence.schedule:
            for spec in silence.schedule:
                interval_contains([spec], now)
        sid = silence.id or str(uuid.uuid4())
        matchers = json.dumps([m.model_dump(by_alias=True) for m in silence.matchers])
        schedule = (
            json.dumps([s.model_dump() for s in silence.schedule]) if silence.schedule else None
        )
        with self._lock:
            if silence.id is not None and self._row(sid) is None:
                raise KeyError(sid)
            with self._writes.writing("store the silence") as db:
                db.execute(
                    "INSERT OR REPLACE INTO silences VALUES (?,?,?,?,?,?,?,?)",
                    (
                        sid,
                        matchers,
                        max(start, now) if silence.id else start,
                        end,
                        silence.created_by,
                        silence.comment,
                        schedule,
                        now,
                    ),
                )
        self._changed()
        return sid

    def expire(self, silence_id: str) -> None:
        """End a silence now (KeyError if unknown); an expired one stays listed."""
        now = self._clock.time()
        with self._lock:
            row = self._row(silence_id)
            if row is None:
                raise KeyError(silence_id)
            start, end = row[2], row[3]
            if end <= now:
                return
            with self._writes.writing("expire the silence") as db:
                db.execute(
                    "UPDATE silences SET starts_at=?, ends_at=?, updated_at=? WHERE id=?",
                    (min(start, now), now, now, silence_id),
                )
        self._changed()

    def records(self, since: float = float("-inf")) -> builtins.list[tuple[Any, ...]]:
        """The stored rows changed after ``since`` (``updated_at``), to share with peers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM silences WHERE updated_at > ?", (since,)
            ).fetchall()
        return [tuple(r) for r in rows]

    def merge(self, rows: Sequence[Sequence[Any]]) -> int:
        """Take rows a peer wrote where they are newer (``updated_at``); returns how many."""
        taken = 0
        with self._lock:
            for row in rows:
                if not _valid_row(row):
                    continue
                mine = self._row(str(row[0]))
                if mine is not None and float(mine[7]) >= float(row[7]):
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO silences VALUES (?,?,?,?,?,?,?,?)", tuple(row)
                )
                taken += 1
        if taken:
            self._changed()
        return taken

    def prune(self) -> int:
        """Forget silences that expired more than ``retention`` seconds ago; returns how many."""
        cutoff = self._clock.time() - self.retention
        with self._lock, self._writes.writing("prune expired silences") as db:
            cursor = db.execute("DELETE FROM silences WHERE ends_at < ?", (cutoff,))
        return int(cursor.rowcount)

    def get(self, silence_id: str) -> GettableSilence:
        """One silence (KeyError if unknown)."""
        with self._lock:
            row = self._row(silence_id)
        if row is None:
            raise KeyError(silence_id)
        return self._gettable(row)

    def list(self) -> builtins.list[GettableSilence]:
        """All silences: active first, then pending, then expired (as Alertmanager's UI)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM silences").fetchall()
        order = {SilenceState.ACTIVE: 0, SilenceState.PENDING: 1, SilenceState.EXPIRED: 2}
        out = [self._gettable(r) for r in rows]
        return sorted(out, key=lambda s: (order[s.status.state], s.ends_at))

    def mutes(self, labels: Labels, now: float | None = None) -> builtins.list[str]:
        """The ids of silences muting an alert with ``labels`` at ``now``."""
        t = self._clock.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ?", (t, t)
            ).fetchall()
        hits = []
        for row in rows:
            matchers = [SilenceMatcher.model_validate(m).to_matcher() for m in json.loads(row[1])]
            if not all(m.matches(labels.get(m.name)) for m in matchers):
                continue
            if row[6] is not None and not interval_contains(_specs(row[6]), t):
                continue
            hits.append(str(row[0]))
        return hits

    def next_transition(self, ids: Sequence[str], now: float) -> float | None:
        """When the earliest of these silences stops (or a window closes), if known."""
        times: builtins.list[float] = []
        with self._lock:
            for sid in ids:
                row = self._row(sid)
                if row is None:
                    continue
                end = float(row[3])
                if row[6] is not None:
                    change = next_change(_specs(row[6]), now)
                    if change is not None:
                        end = min(end, change)
                times.append(end)
        return min(times) if times else None

    def _row(self, silence_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(
            "SELECT * FROM silences WHERE id=?", (silence_id,)
        ).fetchone()
        return row

    def _gettable(self, row: Sequence[Any]) -> GettableSilence:
        now = self._clock.time()
        start, end = float(str(row[2])), float(str(row[3]))
        if end <= now:
            state = SilenceState.EXPIRED
        elif start > now:
            state = SilenceState.PENDING
        else:
            state = SilenceState.ACTIVE
        return GettableSilence(
            id=str(row[0]),
            matchers=[SilenceMatcher.model_validate(m) for m in json.loads(str(row[1]))],
            startsAt=_ts(start),
            endsAt=_ts(end),
            createdBy=str(row[4]),
            comment=str(row[5]),
            schedule=_specs(row[6]) if row[6] is not None else None,
            status=SilenceStatus(state=state),
            updatedAt=_ts(float(str(row[7]))),
        )


def _valid_row(row: Sequence[Any]) -> bool:
    """Whether a row from a peer has the shape of a stored silence (else it is skipped)."""
    if len(row) != _COLUMNS or not all(isinstance(row[i], (int, float)) for i in (2, 3, 7)):
        return False
    try:
        for m in json.loads(str(row[1])):
            SilenceMatcher.model_validate(m).to_matcher()
        if row[6] is not None:
            _specs(row[6])
    except (ValueError, TypeError):
        return False
    return all(isinstance(row[i], str) for i in (0, 4, 5))


def _specs(text: object) -> list[TimeIntervalSpec]:
    return [TimeIntervalSpec.model_validate(s) for s in json.loads(str(text))]
