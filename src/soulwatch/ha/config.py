"""The ``ha`` section: two or more monitors coordinated through one Redis."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from soulwatch.duration import Duration


class HaConfig(BaseModel):
    """``ha``: which Redis coordinates the pair, how long a lease lasts, who this instance is.

    Without ``redis_url`` (or ``redis_url_file``) the monitor runs alone, as before.
    """

    model_config = ConfigDict(extra="forbid")

    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL (Upstash: its rediss:// endpoint).",
    )
    redis_url_file: Path | None = None
    lease_ttl: Duration = Field(
        default=15.0,
        ge=1.0,
        description="How long a leader's lease lasts without renewal; the standby takes over "
        "within this time once the leader stops renewing.",
    )
    instance: str = Field(
        default="",
        max_length=200,
        description="This instance's name among its peers (default: hostname:port of listen).",
    )
    key_prefix: str = Field(default="soulwatch:ha:", min_length=1, max_length=100)
    episode_tolerance: Duration | None = Field(
        default=None,
        gt=0,
        description="How far apart two instances' startsAt of one alert may be and still be the "
        "same episode (default: three evaluation intervals).",
    )
    log_retention: Duration = Field(
        default=7 * 86400.0,
        gt=0,
        description="How long the shared notification log keeps what was sent.",
    )
    redis_timeout: Duration = Field(default=1.0, gt=0, le=30)

    @model_validator(mode="after")
    def _one_url(self) -> HaConfig:
        if self.redis_url is not None and self.redis_url_file is not None:
            raise ValueError("set either ha.redis_url or ha.redis_url_file, not both")
        return self

    @property
    def enabled(self) -> bool:
        """Whether a Redis is configured (HA is on)."""
        return self.redis_url is not None or self.redis_url_file is not None

    def resolved_redis_url(self) -> str | None:
        """The Redis URL, read from its file when given that way."""
        if self.redis_url_file is not None:
            return self.redis_url_file.read_text().strip()
        return self.redis_url.get_secret_value() if self.redis_url else None

    def instance_name(self, listen: str) -> str:
        """``instance``, or ``hostname:port`` of the API's listen address."""
        if self.instance:
            return self.instance
        port = listen.rsplit(":", 1)[-1]
        return f"{socket.gethostname()}:{port}"

    @property
    def renew_interval(self) -> float:
        """How often the leader renews and the standby tries to take the lease over."""
        return self.lease_ttl / 3
