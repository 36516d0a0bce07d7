"""``rum:``: the sites whose browsers report to soulwatch, and the intake's limits."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from soulwatch.duration import Duration
from soulwatch.rum.paths import RouteTemplate

#: User agents dropped by default (substrings, case-insensitive): crawlers and
#: uptime checkers, whose page loads say nothing about users.
DEFAULT_BOT_USER_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "lighthouse",
    "pingdom",
    "uptime",
)

_SITE_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RumSiteConfig(_Model):
    """One site: its label, its public key and the origins its pages are served from.

    ``routes`` are Next.js-style path templates (``/clusters/[id]``,
    ``/docs/[...slug]``, ``/api/clusters/[id]/jobs``); a page or ``/api/*``
    path matching none of them is counted as ``other``, so the number of
    series stays bounded whatever paths browsers send.
    """

    name: str
    key: str = Field(min_length=8, max_length=128)
    origins: list[str] = Field(min_length=1)
    routes: list[str] = Field(default_factory=lambda: ["/"])

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SITE_NAME.match(value):
            raise ValueError("a site name is 1 to 64 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            parts = urlsplit(value)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
            ):
                raise ValueError(
                    f"origin {value!r} must be a scheme and host, e.g. https://app.example.com"
                )
        return [v.rstrip("/") for v in values]

    @field_validator("routes")
    @classmethod
    def _routes(cls, values: list[str]) -> list[str]:
        for value in values:
            RouteTemplate(value)  # raises ValueError naming what is wrong
        return values


class RumConfig(_Model):
    """Real-user monitoring: the intake at ``/rum/v1/events`` and its metrics."""

    sites: list[RumSiteConfig] = Field(default_factory=list)
    interval: Duration = 15.0
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1 << 20)
    max_events_per_batch: int = Field(default=200, ge=1, le=10_000)
    session_events_per_minute: int = Field(default=600, ge=1)
    address_events_per_minute: int = Field(default=6000, ge=1)
    active_window: Duration = 300.0
    max_tracked_sessions: int = Field(default=100_000, ge=100)
    bot_user_agents: list[str] = Field(default_factory=lambda: list(DEFAULT_BOT_USER_AGENTS))

    @model_validator(mode="after")
    def _unique(self) -> RumConfig:
        for attr in ("name", "key"):
            seen: set[str] = set()
            for site in self.sites:
                value = getattr(site, attr)
                if value in seen:
                    raise ValueError(f"two sites have the same {attr} {value!r}")
                seen.add(value)
        return self
