"""The heartbeat monitor: receives pings, evaluates checks, writes their metrics."""

from __future__ import annotations

import hmac
import uuid as uuid_mod
from collections.abc import Iterable

from soulwatch.sources.heartbeats.model import (
    DEFAULT_PERIOD,
    SLUG_RE,
    Check,
    CheckSource,
    CheckStatus,
    Flip,
    HeartbeatCheckConfig,
    HeartbeatsConfig,
    ManagedByConfigError,
    NotPausedError,
    Ping,
    PingKind,
    PingOutcome,
    UnknownCheckError,
    slugify,
)
from soulwatch.sources.heartbeats.store import HeartbeatStore
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage
from soulwatch.tsdb.writer import SeriesWriter


class HeartbeatMonitor:
    """Receives pings, evaluates checks, writes their metrics.

    Methods are synchronous and thread-safe (SQLite writes happen inline);
    the HTTP layer calls them through ``asyncio.to_thread``.
    """

    def __init__(self, store: HeartbeatStore, config: HeartbeatsConfig | None = None) -> None:
        self.store = store
        self.config = config or HeartbeatsConfig()
        self._checks: dict[str, Check] = {c.uuid: c for c in store.load()}
        self._writer: SeriesWriter | None = None
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

    def pause(self, name: str, now: float) -> Check:
        """Pause a check (healthchecks' pause): it expects nothing and never goes down.

        Any check may be paused, a declared one too: pausing is operational
        state (maintenance, a job switched off), not its definition. The next
        success or failure ping ends the pause, as :meth:`resume` does. The
        state is stored, so a restart or a reload keeps the check paused.
        """
        with self.store.lock:
            check = self.by_name(name)
            if check is None:
                raise UnknownCheckError(name)
            if check.status is not CheckStatus.PAUSED:
                flip = Flip(now, check.status_at(now), CheckStatus.PAUSED)
                check.status = CheckStatus.PAUSED
                # A run open when paused is forgotten: it cannot be "too long" any more.
                check.last_start = None
                check.last_start_rid = None
                self.store.record_flip(check, flip)
            return check

    def resume(self, name: str, now: float) -> Check:
        """End a pause: the check is ``new`` again and waits for its next ping.

        A declared check is expected from ``now`` (one period, or the next
        scheduled time, then grace), as when it was first declared. Raises
        :class:`NotPausedError` when the check is not paused.
        """
        with self.store.lock:
            check = self.by_name(name)
            if check is None:
                raise UnknownCheckError(name)
            if check.status is not CheckStatus.PAUSED:
                raise NotPausedError(f"check {name!r} is not paused")
            check.status = CheckStatus.NEW
            # The wait for a first ping starts again now, not at the declaration.
            check.created = now
            self.store.record_flip(check, Flip(now, CheckStatus.PAUSED, CheckStatus.NEW))
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
                if not (create and self.config.auto_create and SLUG_RE.match(slug)):
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
                declared = check.source == "config" and check.status is CheckStatus.NEW
                if declared and not check.created:
                    # Declared before any clock was known (at construction): the
                    # first evaluation is when the wait for its first ping starts.
                    check.created = now
                    self.store.save(check)
                if (
                    check.status is not CheckStatus.DOWN
                    and check.status_at(now) is CheckStatus.DOWN
                ):
                    late = check.status is CheckStatus.UP or check.awaits_first_ping
                    old = CheckStatus.GRACE if late else check.status
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
            status = check.status_at(now)
            up = 0.0 if status is CheckStatus.DOWN else 1.0
            yield Labels.of(__name__="heartbeat_up", check=check.name), up
            paused = 1.0 if status is CheckStatus.PAUSED else 0.0
            yield Labels.of(__name__="heartbeat_paused", check=check.name), paused
            for kind, t in check.last_by_kind.items():
                name = "heartbeat_last_ping_timestamp_seconds"
                yield Labels.of(__name__=name, check=check.name, kind=kind), t
            if check.last_duration is not None:
                yield (
                    Labels.of(__name__="heartbeat_last_duration_seconds", check=check.name),
                    check.last_duration,
                )

    def _write(self, storage: Storage, samples: list[tuple[Labels, float]], t_ms: int) -> None:
        # Series of deleted checks end with a staleness marker, as a vanished target's do.
        if self._writer is None:
            self._writer = SeriesWriter(storage, strict=True, name="heartbeat metrics")
        self._writer.write(t_ms, dict(samples))

    def checkpoint(self) -> int:
        """Copy the store's write-ahead log into its database, off the ping path (its pages)."""
        return self.store.checkpoint()

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
