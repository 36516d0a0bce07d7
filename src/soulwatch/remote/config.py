"""The typed ``remote_write:`` section: prometheus.yml's schema and Prometheus 2.42's defaults.

An existing Prometheus ``remote_write`` list loads unchanged. Durations take
Prometheus's forms (``30s``, ``5m``) or seconds. ``metadata_config`` sends
the scrape targets' metric metadata, as Prometheus 2.x does.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from soulwatch.duration import Duration
from soulwatch.http_auth import ClientSettings
from soulwatch.sources.scrape.config import RelabelConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueConfig(_Model):
    """``queue_config``: how samples are batched, sent in parallel and retried."""

    capacity: int = Field(default=2500, gt=0)
    max_shards: int = Field(default=200, gt=0)
    min_shards: int = Field(default=1, gt=0)
    max_samples_per_send: int = Field(default=500, gt=0)
    batch_send_deadline: Duration = 5.0
    min_backoff: Duration = 0.03
    max_backoff: Duration = 5.0
    retry_on_http_429: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> QueueConfig:
        if self.min_shards > self.max_shards:
            raise ValueError("min_shards must not be greater than max_shards")
        if self.min_backoff > self.max_backoff:
            raise ValueError("min_backoff must not be greater than max_backoff")
        if self.batch_send_deadline <= 0:
            raise ValueError("batch_send_deadline must be positive")
        return self


class MetadataConfig(_Model):
    """``metadata_config``: send the scraped ``# TYPE``, ``# HELP``, ``# UNIT`` periodically."""

    send: bool = True
    send_interval: Duration = Field(default=60.0, gt=0)
    max_samples_per_send: int = Field(default=500, gt=0)


class RemoteWriteConfig(ClientSettings):
    """One ``remote_write`` entry: where to send every committed sample, and how."""

    url: str
    name: str = ""
    remote_timeout: Duration = 30.0
    headers: dict[str, str] = Field(default_factory=dict)
    write_relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    send_exemplars: bool = False
    send_native_histograms: bool = False
    queue_config: QueueConfig = Field(default_factory=QueueConfig)
    metadata_config: MetadataConfig = Field(default_factory=MetadataConfig)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL with a host, got {value!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"url has an invalid port: {value!r}") from None
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # The name becomes a file name in the data directory and a label value.
        if value and not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("name may only hold letters, digits, '-', '_' and '.'")
        return value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {
            "authorization",
            "host",
            "content-encoding",
            "content-length",
            "content-type",
            "user-agent",
            "x-prometheus-remote-write-version",
        }
        bad = sorted(h for h in value if h.lower() in reserved)
        if bad:
            raise ValueError(f"header(s) {', '.join(bad)} are set by soulwatch and may not be set")
        return value

    @property
    def queue_name(self) -> str:
        """``name``, or a short hash of the URL as Prometheus names an unnamed queue."""
        return self.name or hashlib.sha256(self.url.encode()).hexdigest()[:6]


def check_unique_names(configs: list[RemoteWriteConfig]) -> None:
    """Raise ``ValueError`` if two entries would share a queue (and a cursor file)."""
    names = [c.queue_name for c in configs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate remote_write name(s) or URL(s): {', '.join(dup)}")
