"""Heartbeat checks: their config, state and schedule arithmetic (healthchecks semantics)."""

from __future__ import annotations

import re
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from soulwatch.duration import Duration

SLUG_RE = re.compile(r"^[a-z0-9_-]+$")
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
        if value is not None and not SLUG_RE.match(value):
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
    PAUSED = "paused"


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
        anchor = self.last_ping if self.status is CheckStatus.UP else None
        if self.awaits_first_ping:
            # A job declared in the config is expected to run: one that never
            # pings at all is as late as one that stopped.
            anchor = self.created
        if anchor is None:
            return None
        if self.schedule is not None:
            after = datetime.fromtimestamp(anchor, ZoneInfo(self.tz))
            return float(croniter(self.schedule, after).get_next(float))
        return anchor + (self.period or DEFAULT_PERIOD)

    @property
    def awaits_first_ping(self) -> bool:
        """A config-declared check that has not been pinged yet since it was declared.

        It is due one period (or the next scheduled time) after ``created``
        and goes down after the grace, like a check that stopped pinging.
        Checks created through the API or by a ping stay ``new`` (healthchecks' way).
        """
        return self.status is CheckStatus.NEW and self.source == "config" and self.created > 0

    def expected_at(self) -> float | None:
        """When the next ping is due (the start of the grace time), or ``None``."""
        if self.status is CheckStatus.PAUSED:
            return None
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
        if self.status in (CheckStatus.DOWN, CheckStatus.PAUSED):
            # A paused check expects nothing, so it is never late.
            return self.status
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


class NotPausedError(ValueError):
    """Only a paused check can be resumed."""
