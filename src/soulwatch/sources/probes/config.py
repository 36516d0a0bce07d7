"""Probe configuration: which endpoints to probe, how, and how often.

Names follow blackbox_exporter's modules (``valid_status_codes``,
``fail_if_body_matches_regexp``, ``fail_if_ssl``...), with the job and its
targets in the same entry, as a Prometheus job scraping blackbox would have::

    probe_configs:
      - job_name: backend-health
        prober: http
        interval: 15s
        timeout: 5s
        targets: ["https://api.soulcaster.dev/health"]
        http:
          valid_status_codes: [200]
          json_fields: {status: ok}
      - job_name: redis
        prober: redis
        url_env: REDIS_URL
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from soulwatch.duration import FILE_CONTEXT, Duration
from soulwatch.exceptions import ConfigError
from soulwatch.sources.scrape.config import ByteSize, TLSConfig, load_yaml_model

Prober = Literal["http", "tcp", "redis", "upstash", "upstash_vector"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HTTPProbe(_Model):
    """How an HTTP probe judges a response (blackbox_exporter's ``http`` module)."""

    valid_status_codes: list[int] = Field(default_factory=list)  # empty: any 2xx
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    fail_if_ssl: bool = False
    fail_if_not_ssl: bool = False
    fail_if_body_matches_regexp: list[str] = Field(default_factory=list)
    fail_if_body_not_matches_regexp: list[str] = Field(default_factory=list)
    #: soulwatch addition: dotted JSON paths whose values must equal these
    json_fields: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    tls_config: TLSConfig | None = None
    body_size_limit: ByteSize = 10 * 1024 * 1024

    @model_validator(mode="after")
    def _check(self) -> HTTPProbe:
        for pattern in self.fail_if_body_matches_regexp + self.fail_if_body_not_matches_regexp:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return self


class TCPProbe(_Model):
    """A TCP connect probe; with ``tls`` it also completes a TLS handshake."""

    tls: bool = False
    tls_config: TLSConfig | None = None


class RedisProbe(_Model):
    """A Redis probe (``redis://`` or ``rediss://`` targets)."""

    tls_config: TLSConfig | None = None


class UpstashProbe(_Model):
    """An Upstash REST probe (Redis REST, or Vector ``/info``); the token is a bearer token."""

    token: str | None = None
    token_env: str | None = None


class ProbeConfig(_Model):
    """One probe job: a prober, its targets, schedule and labels.

    ``url_env`` adds a target read from the environment (e.g.
    ``UPSTASH_REDIS_REST_URL``), so secrets need not be written in the file.
    """

    job_name: str = Field(min_length=1)
    prober: Prober
    targets: list[str] = Field(default_factory=list)
    url_env: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    interval: Duration = 30.0
    timeout: Duration = 10.0
    http: HTTPProbe = Field(default_factory=HTTPProbe)
    tcp: TCPProbe = Field(default_factory=TCPProbe)
    redis: RedisProbe = Field(default_factory=RedisProbe)
    upstash: UpstashProbe = Field(default_factory=UpstashProbe)

    @model_validator(mode="after")
    def _check(self) -> ProbeConfig:
        if self.timeout <= 0 or self.interval <= 0:
            raise ValueError("interval and timeout must be positive")
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) is greater than interval ({self.interval:g}s)"
            )
        if not self.targets and not self.url_env:
            raise ValueError("a probe needs 'targets' or 'url_env'")
        return self

    def resolved_targets(self, env: Mapping[str, str]) -> list[str]:
        """The targets, with the one named by ``url_env`` read from ``env``."""
        targets = list(self.targets)
        if self.url_env:
            value = env.get(self.url_env, "")
            if not value:
                raise ConfigError(
                    f"probe {self.job_name!r}: environment variable {self.url_env} is not set"
                )
            targets.append(value)
        return targets

    def token(self, env: Mapping[str, str]) -> str | None:
        """The Upstash token from the config or the environment."""
        if self.upstash.token:
            return self.upstash.token
        if self.upstash.token_env:
            value = env.get(self.upstash.token_env, "")
            if not value:
                variable = self.upstash.token_env
                raise ConfigError(
                    f"probe {self.job_name!r}: environment variable {variable} is not set"
                )
            return value
        return None


class ProbesFile(_Model):
    """A file of ``probe_configs``."""

    probe_configs: list[ProbeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ProbesFile:
        names = [p.job_name for p in self.probe_configs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate probe job names: {', '.join(dupes)}")
        return self


def load_probes_config(text: str, *, file: str | None = None) -> ProbesFile:
    """Load ``probe_configs`` from YAML text; errors name the file, line and key."""
    return load_yaml_model(text, ProbesFile, file=file)


def load_probes_file(path: str | Path) -> ProbesFile:
    """Load ``probe_configs`` from a YAML file."""
    p = Path(path)
    return load_probes_config(p.read_text(encoding="utf-8"), file=str(p))


def resolve_probe_configs(
    entries: Sequence[Mapping[str, Any]], *, file: str | None = None, section: str = "probes"
) -> list[ProbeConfig]:
    """Validate raw probe entries (soulwatch.yaml's ``probes:``); errors name ``probes.<i>``."""
    out: list[ProbeConfig] = []
    for i, entry in enumerate(entries):
        try:
            out.append(ProbeConfig.model_validate(entry, context=FILE_CONTEXT))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (f"{section}.{i}", *err["loc"]))
            if err["type"] == "extra_forbidden":
                raise ConfigError(f"unknown key {err['loc'][-1]!r} at {where}", file=file) from None
            raise ConfigError(f"{where}: {err['msg']}", file=file) from None
    names = [p.job_name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate probe job names: {', '.join(dupes)}", file=file)
    return out
