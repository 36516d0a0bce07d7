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

from soulwatch.sources.heartbeats.model import (
    Check,
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
from soulwatch.sources.heartbeats.monitor import HeartbeatMonitor
from soulwatch.sources.heartbeats.store import HeartbeatStore

__all__ = [
    "Check",
    "CheckStatus",
    "Flip",
    "HeartbeatCheckConfig",
    "HeartbeatMonitor",
    "HeartbeatStore",
    "HeartbeatsConfig",
    "ManagedByConfigError",
    "NotPausedError",
    "Ping",
    "PingKind",
    "PingOutcome",
    "UnknownCheckError",
    "slugify",
]
