"""One instance of an HA pair: who notifies, and what the others already sent.

Every instance scrapes, evaluates and routes on its own, so each alone has
everything. :class:`HaCoordinator` decides which one *sends*:

- **leader**: it holds the lease (:mod:`soulwatch.ha.lease`) and sends,
  after checking right before each send that its fencing token is still the
  one in Redis;
- **standby**: another instance holds the lease; notifications are queued
  in the outbox as usual but held, and dropped once the shared log shows the
  leader sent them. When the lease expires the standby takes it within one
  tick and sends what is still due;
- **solo**: Redis cannot be reached; every instance sends on its own (a
  duplicate page beats a lost one) until Redis answers again.

It is the outbox's :class:`~soulwatch.alerting.outbox.DeliveryGate`. One
tick (every third of the lease, or as soon as the lease can expire) renews
or takes the lease, announces this instance, refreshes the shared
notification log and shares silences and acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.message import Notification
from soulwatch.alerting.nflog import LogEntry
from soulwatch.alerting.outbox import SendDecision
from soulwatch.alerting.silences import SilenceStore
from soulwatch.clock import Clock
from soulwatch.exceptions import SoulwatchError
from soulwatch.ha.config import HaConfig
from soulwatch.ha.lease import Holder, Lease
from soulwatch.ha.metrics import HaMetrics
from soulwatch.ha.shared_log import SharedLog, entries_of
from soulwatch.ha.sync import SharedStores
from soulwatch.redaction import redact_url
from soulwatch.runner import BlockingRunner

_log = structlog.get_logger("soulwatch.ha")

#: What a failing Redis raises through redis-py's asyncio client.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)

#: A peer not heard from in this many lease times is no longer listed.
_PEER_TTLS = 3


class Mode(Enum):
    """What this instance does with notifications."""

    STARTING = "starting"
    LEADER = "leader"
    STANDBY = "standby"
    SOLO = "solo"  # Redis unreachable: notify alone


def redis_client(url: str, timeout: float) -> Redis:
    """A client that fails fast: one attempt, ``timeout`` to connect and per call."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class HaCoordinator:
    """The HA state of this instance, its tick loop, and the outbox's delivery gate."""

    def __init__(
        self,
        config: HaConfig,
        *,
        client: Redis,
        instance: str,
        url: str,
        clock: Clock,
        runner: BlockingRunner,
        silences: SilenceStore,
        acks: AckStore | None,
        evaluation_interval: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.instance = instance
        self._client = client
        self._clock = clock
        self._redacted_url = redact_url(url)
        self._prefix = config.key_prefix
        self.lease = Lease(client, key_prefix=self._prefix, instance=instance, ttl=config.lease_ttl)
        tolerance = config.episode_tolerance or 3 * evaluation_interval
        self.log = SharedLog(tolerance=tolerance, freshness=2 * config.renew_interval + tolerance)
        self._stores = SharedStores(
            client, key_prefix=self._prefix, silences=silences, acks=acks, runner=runner
        )
        self.metrics = HaMetrics(registry)
        self.mode = Mode.STARTING
        self.mode_since = clock.time()
        self.leader: Holder | None = None
        self.leader_since: float | None = None
        self.last_renewal: float | None = None
        self.last_error: str | None = None
        self.peers: dict[str, dict[str, Any]] = {}
        self._lease_left: float | None = None
        #: When Redis last answered a whole tick (monotonic).
        self._reached = clock.monotonic()
        self._wake = asyncio.Event()
        self._on_promote: list[Callable[[], None]] = []
        silences.on_change(self._wake.set)

    def on_promote(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this instance starts notifying (to send what it held)."""
        self._on_promote.append(callback)

    @property
    def notifying(self) -> bool:
        """Whether this instance sends notifications now."""
        return self.mode in (Mode.LEADER, Mode.SOLO)

    # --- the tick ------------------------------------------------------------------

    async def run(self) -> None:
        """Tick forever (cancel to stop)."""
        while True:
            self._wake.clear()
            await self.tick()
            await self._wait(self._next_tick())

    def _next_tick(self) -> float:
        every = self.config.renew_interval
        if self.mode is Mode.STANDBY and self._lease_left is not None:
            # Be there the moment the leader's lease runs out.
            return max(0.05, min(every, self._lease_left + 0.02))
        return every

    async def _wait(self, timeout: float) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def tick(self) -> None:
        """Renew or take the lease, announce this instance, refresh what is shared."""
        try:
            await asyncio.wait_for(self._exchange(), 4 * self.config.redis_timeout)
        except REDIS_ERRORS as exc:
            self._unreachable(exc)
            return
        self.metrics.redis_up.set(1)
        self.last_error = None
        self._reached = self._clock.monotonic()

    async def _exchange(self) -> None:
        now = self._clock.time()
        # What the others sent first: a standby that takes over below sends at once,
        # and must know what the old leader sent up to its last moment.
        await self._refresh_log(now)
        if self.lease.held is not None:
            if await self.lease.renew():
                self.last_renewal = now
                self.metrics.renewals.labels("ok").inc()
            else:
                self.metrics.renewals.labels("lost").inc()
                _log.warning("lease lost", instance=self.instance)
        elif await self.lease.acquire() is not None:
            self.last_renewal = now
            self.metrics.takeovers.inc()
        holder = self.lease.held or await self.lease.current()
        if holder != self.leader:
            self.leader, self.leader_since = holder, now
        if self.lease.held is None and holder is not None:
            ttl_ms = int(await self._client.pttl(f"{self._prefix}lease"))
            self._lease_left = ttl_ms / 1000 if ttl_ms > 0 else 0.0
        else:
            self._lease_left = None
        self._set_mode(Mode.LEADER if self.lease.held is not None else Mode.STANDBY)
        await self._announce(now)
        try:
            await self._stores.sync(now)
        except (SoulwatchError, sqlite3.Error) as exc:
            # The local stores failed (a full disk): the lease matters more; next tick again.
            _log.warning("sharing silences and acknowledgements failed", error=str(exc))

    async def _announce(self, now: float) -> None:
        key = f"{self._prefix}peers"
        me = {"seen": now, "mode": self.mode.value, "since": self.mode_since}
        await self._client.hset(key, self.instance, json.dumps(me))
        raw: dict[Any, Any] = await self._client.hgetall(key)
        peers: dict[str, dict[str, Any]] = {}
        stale: list[Any] = []
        for name, value in raw.items():
            try:
                info = json.loads(value)
                seen = float(info["seen"])
            except (ValueError, KeyError, TypeError):
                stale.append(name)
                continue
            if now - seen > _PEER_TTLS * self.config.lease_ttl:
                stale.append(name)
                continue
            peers[name.decode() if isinstance(name, bytes) else str(name)] = info
        if stale:
            await self._client.hdel(key, *stale)
        self.peers = peers

    async def _refresh_log(self, now: float) -> None:
        key = f"{self._prefix}nflog"
        bad = self.log.refresh(await self._client.hgetall(key))
        old = self.log.forget(now - self.config.log_retention)
        if self.mode is Mode.LEADER:
            bad += old
        if bad:
            await self._client.hdel(key, *bad)

    def _set_mode(self, mode: Mode) -> None:
        if mode is self.mode:
            return
        old, self.mode = self.mode, mode
        self.mode_since = self._clock.time()
        token = self.lease.held.token if self.lease.held else 0
        self.metrics.leader.set(1 if mode is Mode.LEADER else 0)
        self.metrics.notifying.set(1 if self.notifying else 0)
        self.metrics.fencing_token.set(token)
        leader = self.leader.instance if self.leader else None
        if mode is Mode.SOLO:
            _log.warning(
                "redis unreachable: this instance notifies on its own",
                instance=self.instance,
                redis=self._redacted_url,
                error=self.last_error,
            )
        elif old is Mode.SOLO:
            _log.info(
                "redis reachable again: one instance notifies",
                instance=self.instance,
                mode=mode.value,
                leader=leader,
            )
        elif mode is Mode.LEADER:
            _log.info("leading: this instance notifies", instance=self.instance, token=token)
        else:
            _log.info("standby: holding notifications", instance=self.instance, leader=leader)
        if self.notifying:
            for callback in self._on_promote:
                callback()

    def _unreachable(self, exc: BaseException) -> None:
        """Redis failed. Solo only once it has failed for a whole lease time.

        Until then a leader's lease is still valid (it was renewed less than a
        lease time ago) and a standby could not have taken over anyway: one
        slow answer from a busy Redis must not make both instances send.
        """
        self.last_error = redact_url(f"{type(exc).__name__}: {exc}")
        self.metrics.redis_up.set(0)
        if self.lease.held is not None:
            self.metrics.renewals.labels("error").inc()
        if (
            self.mode is not Mode.STARTING
            and self._clock.monotonic() - self._reached < self.config.lease_ttl
        ):
            return
        # Whatever Redis says later, this instance no longer knows it holds the lease.
        self.lease.held = None
        self._lease_left = None
        self._set_mode(Mode.SOLO)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self._client.aclose()

    async def release(self) -> None:
        """Give the lease back on a clean stop, so a peer takes over at once."""
        if self.lease.held is None:
            return
        try:
            await asyncio.wait_for(self.lease.release(), 2 * self.config.redis_timeout)
        except REDIS_ERRORS as exc:
            _log.warning("could not release the lease", error=redact_url(str(exc)))
            return
        _log.info("lease released", instance=self.instance)

    # --- the outbox's gate -------------------------------------------------------------

    async def before_send(self, n: Notification, queued_at: float) -> tuple[SendDecision, str]:
        """Whether the outbox sends ``n`` now, holds it, or drops it as sent by a peer."""
        sent = self.log.covers(n, queued_at)
        if sent is not None:
            self.metrics.skipped.inc()
            return SendDecision.SKIP, f"already sent by {sent.by}"
        if self.mode is Mode.SOLO:
            return SendDecision.SEND, ""
        if self.mode is not Mode.LEADER:
            return SendDecision.HOLD, ""
        try:
            held = await asyncio.wait_for(self.lease.still_held(), 2 * self.config.redis_timeout)
        except REDIS_ERRORS as exc:
            # The lease was renewed less than a lease time ago (else this would be solo):
            # still this instance's to send.
            self._unreachable(exc)
            return SendDecision.SEND, ""
        if held:
            return SendDecision.SEND, ""
        _log.warning("lease lost before sending: holding", instance=self.instance)
        self._set_mode(Mode.STANDBY)
        self._wake.set()
        return SendDecision.HOLD, ""

    async def delivered(self, n: Notification, at: float) -> None:
        """Write what was sent to the shared log (a failure only means a peer may repeat it)."""
        fields = entries_of(n, sent_at=at, by=self.instance)
        self.log.record(fields)
        if self.mode is Mode.SOLO:
            return
        try:
            await asyncio.wait_for(
                self._client.hset(f"{self._prefix}nflog", mapping=fields),  # type: ignore[arg-type]
                2 * self.config.redis_timeout,
            )
        except REDIS_ERRORS as exc:
            self._unreachable(exc)

    def merged(
        self,
        integration: str,
        group_key: str,
        local: LogEntry | None,
        episodes: Sequence[tuple[str, bool]],
    ) -> LogEntry | None:
        """The dispatcher's log entry with what peers already sent."""
        return self.log.merged(integration, group_key, local, episodes)

    # --- what the API and the console show -------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``/api/v1/status/ha``: mode, this instance, the leader, since when, peers."""
        now = self._clock.time()
        return {
            "enabled": True,
            "mode": self.mode.value,
            "instance": self.instance,
            "notifying": self.notifying,
            "leader": self.leader.instance if self.leader and self.mode is not Mode.SOLO else None,
            "fencingToken": self.leader.token if self.leader else None,
            "leaderSince": self.leader_since,
            "modeSince": self.mode_since,
            "lastRenewal": self.last_renewal,
            "leaseTtl": self.config.lease_ttl,
            "redis": self._redacted_url,
            "redisReachable": self.mode is not Mode.SOLO and self.last_error is None,
            "lastError": self.last_error,
            "peers": [
                {
                    "instance": name,
                    "mode": info.get("mode"),
                    "lastSeen": info.get("seen"),
                    "age": round(now - float(info.get("seen", now)), 3),
                }
                for name, info in sorted(self.peers.items())
            ],
            "sharedLogEntries": len(self.log),
        }
