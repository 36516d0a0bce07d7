"""Heartbeat checks with healthchecks.io's ping semantics.

A loop (a cron job, the Reddit poller) pings soulwatch when it runs. A check
expects a ping every ``period`` (or at each fire time of a ``schedule`` cron
expression in time zone ``tz``) and allows ``grace`` more before it is down.
``/start`` opens a run and the next success or failure closes it (matched by
``rid`` when given); a run open longer than ``grace`` is down too ("ran too
long"). A failure ping is down at once; any success afterwards resolves it.

Each evaluation writes ``heartbeat_up{check}``,
``heartbeat_last_ping_timestamp_seconds{check,kind}`` and
``heartbeat_last_duration_seconds{check}`` to storage, so heartbeat alerts are
ordinary rules. Checks, their state, recent pings and status changes live in
SQLite (:class:`HeartbeatStore`), so a restart loses nothing.
"""

from __future__ import annotations

import hmac
import json
import re
import sqlite3
import threading
import uuid as uuid_mod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from soulwatch.duration import Duration
from soulwatch.tsdb.model import STALE_NAN, Labels
from soulwatch.tsdb.storage import Storage

_SLUG = re.compile(r"^[a-z0-9_-]+$")
DEFAULT_PERIOD = 86400.0
DEFAULT_GRACE = 3600.0


def slugify(name: str) -> str:
    """healthchecks' slug of a check name: lower case, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-") or "check"


class HeartbeatCheckConfig(BaseModel):
    """One heartbeat check declared in ``heartbeats.checks``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    uuid: uuid_mod.UUID | None = None
    slug: str | None = None
    period: Duration | None = None
    schedule: str | None = None
    tz: str = "UTC"
    grace: Duration = DEFAULT_GRACE
    description: str = ""

    @field_validator("slug")
    @classmethod
    def _slug_chars(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.match(value):
            raise ValueError("a slug may contain only a-z, 0-9, hyphens and underscores")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("tz")
    @classmethod
    def _valid_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value

    @model_validator(mode="after")
    def _period_or_schedule(self) -> HeartbeatCheckConfig:
        if self.period is not None and self.schedule is not None:
            raise ValueError("set either period or schedule, not both")
        if self.period is not None and self.period <= 0:
            raise ValueError("period must be positive")
        return self


class HeartbeatsConfig(BaseModel):
    """The ``heartbeats`` section: ping settings and declared checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ping_key: SecretStr | None = None
    ping_key_file: Path | None = None
    auto_create: bool = False
    max_body_bytes: int = Field(default=10_000, ge=0, le=1_000_000)
    keep_pings: int = Field(default=100, ge=1, le=100_000)
    evaluation_interval: Duration | None = None
    checks: list[HeartbeatCheckConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> HeartbeatsConfig:
        names = [c.name for c in self.checks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate check name(s): {', '.join(sorted(dup))}")
        if self.ping_key is not None and self.ping_key_file is not None:
            raise ValueError("set either ping_key or ping_key_file, not both")
        return self

    def resolved_ping_key(self) -> str | None:
        """The ping key, read from ``ping_key_file`` when that is how it is given."""
        if self.ping_key_file is not None:
            return self.ping_key_file.read_text().strip()
        return self.ping_key.get_secret_value() if self.ping_key else None


class CheckStatus(Enum):
    """A check's status, as healthchecks names them."""

    NEW = "new"
    UP = "up"
    GRACE = "grace"
    DOWN = "down"


class PingKind(Enum):
    """What a ping signals."""

    SUCCESS = "success"
    FAIL = "fail"
    START = "start"
    LOG = "log"


CheckSource = Literal["config", "api", "auto"]


class PingOutcome(Enum):
    """The result of a ping request, mapped by the HTTP layer to a status code."""

    OK = "ok"
    CREATED = "created"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"


@dataclass
class Check:
    """A check's definition and state. Times are Unix seconds."""

    uuid: str
    name: str
    slug: str
    period: float | None = DEFAULT_PERIOD
    schedule: str | None = None
    tz: str = "UTC"
    grace: float = DEFAULT_GRACE
    description: str = ""
    source: CheckSource = "api"
    status: CheckStatus = CheckStatus.NEW
    created: float = 0.0
    last_ping: float | None = None
    last_start: float | None = None
    last_start_rid: str | None = None
    last_duration: float | None = None
    last_by_kind: dict[str, float] = field(default_factory=dict)
    n_pings: int = 0

    def _schedule_due(self) -> float | None:
        if self.status is not CheckStatus.UP or self.last_ping is None:
            return None
        if self.schedule is not None:
            after = datetime.fromtimestamp(self.last_ping, ZoneInfo(self.tz))
            return float(croniter(self.schedule, after).get_next(float))
        return self.last_ping + (self.period or DEFAULT_PERIOD)

    def expected_at(self) -> float | None:
        """When the next ping is due (the start of the grace time), or ``None``."""
        due = self._schedule_due()
        # A run that started and has not finished is due to finish within grace.
        if self.last_start is not None and self.status is not CheckStatus.DOWN:
            due = self.last_start if due is None else min(due, self.last_start)
        return due

    def down_after(self) -> float | None:
        """When the check goes down if no ping comes, or ``None``."""
        due = self.expected_at()
        return None if due is None else due + self.grace

    def status_at(self, now: float) -> CheckStatus:
        """The status shown at ``now`` (adds ``grace`` between due and down)."""
        if self.status is CheckStatus.DOWN:
            return CheckStatus.DOWN
        down = self.down_after()
        if down is not None and now >= down:
            return CheckStatus.DOWN
        # A run in progress is not "late": only a missed scheduled ping is.
        due = self._schedule_due()
        if due is not None and now > due:
            return CheckStatus.GRACE
        return self.status


@dataclass(frozen=True)
class Ping:
    """One received ping."""

    t: float
    kind: PingKind
    rid: str | None = None
    exit_status: int | None = None
    method: str = "GET"
    remote_addr: str = ""
    user_agent: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class Flip:
    """A status change of a check."""

    t: float
    old: CheckStatus
    new: CheckStatus


class UnknownCheckError(KeyError):
    """No check has that name."""


class ManagedByConfigError(ValueError):
    """The check is declared in the config file and is changed there, not via the API."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, slug TEXT NOT NULL, period REAL,
    schedule TEXT, tz TEXT NOT NULL, grace REAL NOT NULL, description TEXT NOT NULL,
    source TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, last_ping REAL,
    last_start REAL, last_start_rid TEXT, last_duration REAL, last_by_kind TEXT NOT NULL,
    n_pings INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, t REAL NOT NULL, kind TEXT NOT NULL,
    rid TEXT, exit_status INTEGER, method TEXT NOT NULL, remote_addr TEXT NOT NULL,
    user_agent TEXT NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pings_by_check ON pings (uuid, id);
CREATE TABLE IF NOT EXISTS flips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, t REAL NOT NULL,
    old TEXT NOT NULL, new TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flips_by_check ON flips (uuid, id);
"""

_COLUMNS = (
    "uuid, name, slug, period, schedule, tz, grace, description, source, status, created, "
    "last_ping, last_start, last_start_rid, last_duration, last_by_kind, n_pings"
)


class HeartbeatStore:
    """SQLite persistence of checks, pings and flips (one file in the data dir).

    Calls block; the service runs them off the event loop. One connection is
    shared under a lock, so calls from worker threads are serialised.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self._db.close()

    def load(self) -> list[Check]:
        """Every stored check."""
        with self.lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM checks ORDER BY name").fetchall()
        return [_row_to_check(r) for r in rows]

    def save(self, check: Check) -> None:
        """Insert or update a check."""
        values = (
            check.uuid, check.name, check.slug, check.period, check.schedule, check.tz,
            check.grace, check.description, check.source, check.status.value, check.created,
            check.last_ping, check.last_start, check.last_start_rid, check.last_duration,
            json.dumps(check.last_by_kind), check.n_pings,
        )  # fmt: skip
        with self.lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO checks ({_COLUMNS}) VALUES ({','.join('?' * 17)})", values
            )

    def delete(self, check_uuid: str) -> None:
        """Remove a check with its pings and flips."""
        with self.lock:
            self._db.execute("BEGIN")
            for table in ("checks", "pings", "flips"):
                self._db.execute(f"DELETE FROM {table} WHERE uuid = ?", (check_uuid,))
            self._db.execute("COMMIT")

    def record_ping(self, check: Check, ping: Ping, keep: int, flip: Flip | None) -> None:
        """Store the check's new state, the ping (trimming old ones) and a flip, atomically."""
        with self.lock:
            self._db.execute("BEGIN")
            try:
                self.save(check)
                self._db.execute(
                    "INSERT INTO pings (uuid, t, kind, rid, exit_status, method, remote_addr,"
                    " user_agent, body) VALUES (?,?,?,?,?,?,?,?,?)",
                    (check.uuid, ping.t, ping.kind.value, ping.rid, ping.exit_status, ping.method,
                     ping.remote_addr, ping.user_agent, ping.body),
                )  # fmt: skip
                self._db.execute(
                    "DELETE FROM pings WHERE uuid = ? AND id <= (SELECT id FROM pings"
                    " WHERE uuid = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (check.uuid, check.uuid, keep),
                )
                if flip is not None:
                    self._insert_flip(check.uuid, flip)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_flip(self, check: Check, flip: Flip) -> None:
        """Store a status change found by evaluation, with the check's new state."""
        with self.lock:
            self._db.execute("BEGIN")
            self.save(check)
            self._insert_flip(check.uuid, flip)
            self._db.execute("COMMIT")

    def _insert_flip(self, check_uuid: str, flip: Flip) -> None:
        self._db.execute(
            "INSERT INTO flips (uuid, t, old, new) VALUES (?,?,?,?)",
            (check_uuid, flip.t, flip.old.value, flip.new.value),
        )

    def pings(self, check_uuid: str, limit: int = 100) -> list[Ping]:
        """The most recent pings of a check, newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT t, kind, rid, exit_status, method, remote_addr, user_agent, body FROM pings"
                " WHERE uuid = ? ORDER BY id DESC LIMIT ?",
                (check_uuid, limit),
            ).fetchall()
        return [Ping(r[0], PingKind(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7])) for r in rows]

    def flips(self, check_uuid: str, limit: int = 100) -> list[Flip]:
        """The most recent status changes of a check, newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT t, old, new FROM flips WHERE uuid = ? ORDER BY id DESC LIMIT ?",
                (check_uuid, limit),
            ).fetchall()
        return [Flip(r[0], CheckStatus(r[1]), CheckStatus(r[2])) for r in rows]


def _row_to_check(r: Sequence[Any]) -> Check:
    return Check(
        uuid=r[0], name=r[1], slug=r[2], period=r[3], schedule=r[4], tz=r[5], grace=r[6],
        description=r[7], source=r[8], status=CheckStatus(r[9]), created=r[10], last_ping=r[11],
        last_start=r[12], last_start_rid=r[13], last_duration=r[14],
        last_by_kind=json.loads(r[15]), n_pings=r[16],
    )  # fmt: skip


class HeartbeatMonitor:
    """Receives pings, evaluates checks, writes their metrics.

    Methods are synchronous and thread-safe (SQLite writes happen inline);
    the HTTP layer calls them through ``asyncio.to_thread``.
    """

    def __init__(self, store: HeartbeatStore, config: HeartbeatsConfig | None = None) -> None:
        self.store = store
        self.config = config or HeartbeatsConfig()
        self._checks: dict[str, Check] = {c.uuid: c for c in store.load()}
        self._written: set[Labels] = set()
        self._ping_key: str | None = None
        self.configure(self.config, now=None)

    # -- definitions ---------------------------------------------------------

    def configure(self, config: HeartbeatsConfig, now: float | None) -> None:
        """Apply a (re)loaded ``heartbeats`` section: upsert declared checks, keep state.

        Checks that came from the config and are no longer declared are removed;
        checks created through the API or by auto-create stay.
        """
        with self.store.lock:
            self.config = config
            self._ping_key = config.resolved_ping_key()
            declared = {c.name for c in config.checks}
            for check in list(self._checks.values()):
                if check.source == "config" and check.name not in declared:
                    self._remove(check)
            for spec in config.checks:
                self._upsert(spec, "config", now or 0.0)

    def _upsert(self, spec: HeartbeatCheckConfig, source: CheckSource, now: float) -> Check:
        existing = self.by_name(spec.name)
        wanted_uuid = str(spec.uuid) if spec.uuid else None
        if existing is not None and wanted_uuid and existing.uuid != wanted_uuid:
            self._remove(existing)
            existing.uuid = wanted_uuid
        check = existing or Check(
            uuid=wanted_uuid or str(uuid_mod.uuid4()), name=spec.name, slug="", created=now
        )
        check.slug = spec.slug or slugify(spec.name)
        check.period = spec.period if spec.schedule is None else None
        if check.period is None and spec.schedule is None:
            check.period = DEFAULT_PERIOD
        check.schedule = spec.schedule
        check.tz = spec.tz
        check.grace = spec.grace
        check.description = spec.description
        check.source = "config" if source == "config" else (existing or check).source
        if existing is None:
            check.source = source
        self._checks[check.uuid] = check
        self.store.save(check)
        return check

    def _remove(self, check: Check) -> None:
        self._checks.pop(check.uuid, None)
        self.store.delete(check.uuid)

    def create(self, spec: HeartbeatCheckConfig, now: float, source: CheckSource = "api") -> Check:
        """Create a check (API or auto-create). Raises ``ValueError`` if the name is taken."""
        with self.store.lock:
            if self.by_name(spec.name) is not None:
                raise ValueError(f"a check named {spec.name!r} already exists")
            if spec.uuid is not None and str(spec.uuid) in self._checks:
                raise ValueError("a check with that uuid already exists")
            return self._upsert(spec, source, now)

    def update(self, name: str, spec: HeartbeatCheckConfig) -> Check:
        """Replace the definition of an API-created check, keeping its state."""
        with self.store.lock:
            check = self._editable(name)
            if spec.name != name and self.by_name(spec.name) is not None:
                raise ValueError(f"a check named {spec.name!r} already exists")
            check.name = spec.name
            spec = spec.model_copy(update={"uuid": None})
            return self._upsert(spec, check.source, check.created)

    def delete(self, name: str) -> None:
        """Delete an API-created check."""
        with self.store.lock:
            self._remove(self._editable(name))

    def _editable(self, name: str) -> Check:
        check = self.by_name(name)
        if check is None:
            raise UnknownCheckError(name)
        if check.source == "config":
            raise ManagedByConfigError(
                f"check {name!r} is declared in the config file; change it there"
            )
        return check

    def checks(self) -> list[Check]:
        """Every check, by name."""
        return sorted(self._checks.values(), key=lambda c: c.name)

    def by_name(self, name: str) -> Check | None:
        """The check named ``name``."""
        return next((c for c in self._checks.values() if c.name == name), None)

    # -- pings ---------------------------------------------------------------

    def ping_uuid(self, check_uuid: str, ping: Ping) -> PingOutcome:
        """A ping to ``/ping/<uuid>...``."""
        with self.store.lock:
            check = self._checks.get(check_uuid.lower())
            if check is None:
                return PingOutcome.NOT_FOUND
            self._apply(check, ping)
            return PingOutcome.OK

    def ping_slug(self, ping_key: str, slug: str, ping: Ping, *, create: bool) -> PingOutcome:
        """A ping to ``/ping/<ping-key>/<slug>...``; may auto-create the check."""
        with self.store.lock:
            key = self._ping_key
            if key is None or not hmac.compare_digest(key.encode(), ping_key.encode()):
                return PingOutcome.NOT_FOUND
            matches = [c for c in self._checks.values() if c.slug == slug]
            if len(matches) > 1:
                return PingOutcome.AMBIGUOUS
            outcome = PingOutcome.OK
            if not matches:
                if not (create and self.config.auto_create and _SLUG.match(slug)):
                    return PingOutcome.NOT_FOUND
                spec = HeartbeatCheckConfig(name=slug, slug=slug)
                if self.by_name(slug) is not None:
                    return PingOutcome.AMBIGUOUS
                matches = [self._upsert(spec, "auto", ping.t)]
                outcome = PingOutcome.CREATED
            self._apply(matches[0], ping)
            return outcome

    def _apply(self, check: Check, ping: Ping) -> None:
        now = ping.t
        limit = self.config.max_body_bytes
        ping = Ping(ping.t, ping.kind, ping.rid, ping.exit_status, ping.method,
                    ping.remote_addr, ping.user_agent[:200], ping.body[:limit])  # fmt: skip
        check.n_pings += 1
        check.last_by_kind[ping.kind.value] = now
        flip: Flip | None = None
        if ping.kind is PingKind.START:
            check.last_start = now
            check.last_start_rid = ping.rid
            check.last_ping = now
        elif ping.kind in (PingKind.SUCCESS, PingKind.FAIL):
            if check.last_start is not None and (
                ping.rid is None or ping.rid == check.last_start_rid
            ):
                check.last_duration = now - check.last_start
                check.last_start = None
                check.last_start_rid = None
            old = check.status_at(now)
            new = CheckStatus.UP if ping.kind is PingKind.SUCCESS else CheckStatus.DOWN
            if old is not new and not (old is CheckStatus.GRACE and new is CheckStatus.UP):
                flip = Flip(now, old, new)
            check.status = new
            check.last_ping = now
        self.store.record_ping(check, ping, self.config.keep_pings, flip)

    # -- evaluation ----------------------------------------------------------

    def evaluate(self, now: float, storage: Storage | None = None) -> list[tuple[Check, Flip]]:
        """Mark overdue checks down; write metrics at ``now``; return the new flips."""
        flips: list[tuple[Check, Flip]] = []
        with self.store.lock:
            for check in self._checks.values():
                if (
                    check.status is not CheckStatus.DOWN
                    and check.status_at(now) is CheckStatus.DOWN
                ):
                    old = CheckStatus.GRACE if check.status is CheckStatus.UP else check.status
                    flip = Flip(now, old, CheckStatus.DOWN)
                    check.status = CheckStatus.DOWN
                    check.last_start = None
                    check.last_start_rid = None
                    self.store.record_flip(check, flip)
                    flips.append((check, flip))
            samples = list(self._samples(now))
        if storage is not None:
            self._write(storage, samples, int(now * 1000))
        return flips

    def _samples(self, now: float) -> Iterable[tuple[Labels, float]]:
        for check in self._checks.values():
            up = 0.0 if check.status_at(now) is CheckStatus.DOWN else 1.0
            yield Labels.of(__name__="heartbeat_up", check=check.name), up
            for kind, t in check.last_by_kind.items():
                name = "heartbeat_last_ping_timestamp_seconds"
                yield Labels.of(__name__=name, check=check.name, kind=kind), t
            if check.last_duration is not None:
                yield (
                    Labels.of(__name__="heartbeat_last_duration_seconds", check=check.name),
                    check.last_duration,
                )

    def _write(self, storage: Storage, samples: list[tuple[Labels, float]], t_ms: int) -> None:
        app = storage.appender()
        current = set()
        for labels, value in samples:
            app.append(labels, t_ms, value)
            current.add(labels)
        # Series of deleted checks end with a staleness marker, as a vanished target's do.
        for labels in self._written - current:
            app.append(labels, t_ms, STALE_NAN)
        app.commit()
        self._written = current

    def pings(self, name: str, limit: int = 100) -> list[Ping]:
        """Recent pings of the check named ``name``."""
        check = self.by_name(name)
        if check is None:
            raise UnknownCheckError(name)
        return self.store.pings(check.uuid, limit)

    def flips(self, name: str, limit: int = 100) -> list[Flip]:
        """Recent status changes of the check named ``name``."""
        check = self.by_name(name)
        if check is None:
            raise UnknownCheckError(name)
        return self.store.flips(check.uuid, limit)
