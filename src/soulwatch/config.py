"""The typed model of ``soulwatch.yaml`` and its loader.

The ``global``, ``scrape_configs`` and ``rule_files`` sections follow
``prometheus.yml``, so those sections of an existing Prometheus config load
unchanged; ``alerting`` holds Alertmanager's keys inline or the path of an
``alertmanager.yml``. soulwatch's own sections (``heartbeats``, ``probes``,
``collectors``, ``storage``, ``auth``, ``api``, ``self_monitoring``) sit
beside them. Every setting is documented in ``docs/configuration.md``.

:func:`load_config` reports the first problem as ``file:line:col: message``;
unknown keys are errors with a did-you-mean. Secrets come from ``${VAR}``,
``<key>_env: VAR`` or ``<key>_file: path``, never required inline.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from soulwatch.alerting.alertmanagers import AlertmanagerConfig
from soulwatch.alerting.config import AlertingConfig, url_problem
from soulwatch.alerting.config import _check_references as check_alerting_references
from soulwatch.alerting.config import load_config as load_alerting_file
from soulwatch.config_loading import Positions, load_yaml, validation_error
from soulwatch.duration import FILE_CONTEXT, Duration
from soulwatch.exceptions import ConfigError
from soulwatch.ha.config import HaConfig
from soulwatch.otlp.config import OtlpConfig
from soulwatch.remote.config import RemoteWriteConfig, check_unique_names
from soulwatch.remote.query import QueryConfig
from soulwatch.rum.config import RumConfig
from soulwatch.sources.collectors.config import (
    E2BCollectorConfig,
    SoulcasterCollectorConfig,
    VercelCollectorConfig,
)
from soulwatch.sources.heartbeats import HeartbeatsConfig
from soulwatch.sources.probes.config import ProbeConfig
from soulwatch.sources.scrape.config import GlobalConfig as ScrapeGlobalConfig
from soulwatch.sources.scrape.config import RelabelConfig, ScrapeConfig
from soulwatch.tsdb.config import StorageConfig

DEFAULT_LISTEN = "127.0.0.1:9797"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GlobalConfig(ScrapeGlobalConfig):
    """``global``: defaults shared by scrape jobs and rule groups, as in prometheus.yml.

    An unset ``scrape_timeout`` is ``min(10s, scrape_interval)``, as in Prometheus.
    """


class CollectorsConfig(_Model):
    """``collectors``: readers of systems that expose no metrics (each optional)."""

    soulcaster: SoulcasterCollectorConfig | None = None
    e2b: E2BCollectorConfig | None = None
    vercel: VercelCollectorConfig | None = None


class AlertingSection(BaseModel):
    """``alerting``: Alertmanager's configuration inline, or ``config_file``.

    Inline keys are Alertmanager's (``route``, ``receivers``, ``inhibit_rules``,
    ``time_intervals``...) plus the alerting component's extensions; they are
    validated by :class:`soulwatch.alerting.config.AlertingConfig` with
    positions in this file. ``alertmanagers`` and ``alert_relabel_configs``
    are prometheus.yml's keys: soulwatch sends its alerts to those
    Alertmanagers as Prometheus does (:mod:`soulwatch.alerting.alertmanagers`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    extra_keys_model: ClassVar[type[BaseModel]] = AlertingConfig

    config_file: Path | None = None
    alertmanagers: list[AlertmanagerConfig] = Field(default_factory=list)
    alert_relabel_configs: list[RelabelConfig] = Field(default_factory=list)

    def inline(self) -> dict[str, Any]:
        """The inline Alertmanager keys."""
        return dict(self.model_extra or {})


class Scope(Enum):
    """What a bearer token may do. ``admin`` may do everything."""

    ADMIN = "admin"
    SILENCES = "silences"
    PUSH = "push"
    ALERTS = "alerts"
    READ = "read"


class TokenConfig(_Model):
    """One API token: ``token`` (or ``token_env`` / ``token_file``) and its scopes."""

    name: str = Field(min_length=1)
    token: SecretStr | None = None
    token_file: Path | None = None
    scopes: list[Scope] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set exactly one of token, token_env or token_file")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters")
        return self

    def secret(self) -> str:
        """The token value."""
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        assert self.token is not None
        return self.token.get_secret_value()


class AuthConfig(_Model):
    """``auth``: whether reads need a token, and the tokens."""

    reads: Literal["open", "token"] = "open"
    tokens: list[TokenConfig] = Field(default_factory=list)


class ApiConfig(_Model):
    """``api``: limits of the HTTP API."""

    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    push_max_bytes: int = Field(default=10 << 20, ge=1024)
    query_timeout: Duration = 120.0
    max_points_per_series: int = Field(default=11_000, ge=1)
    lookback_delta: Duration = 300.0
    max_uri_bytes: int = Field(default=64 * 1024, ge=1024, le=8 << 20)
    cors_allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != "*" and not re.fullmatch(r"https?://[^/?#\s]+", value):
                raise ValueError(
                    f"not an origin: {value!r} (write scheme://host[:port], e.g. "
                    "https://app.example.com, or '*')"
                )
        return values


class SelfMonitoringConfig(_Model):
    """``self_monitoring``: soulwatch's own metrics and an outbound dead man's switch."""

    interval: Duration = 60.0
    deadman_url: SecretStr | None = None
    deadman_url_file: Path | None = None
    deadman_timeout: Duration = 10.0

    def resolved_deadman_url(self) -> str | None:
        """The dead man's switch URL, read from its file when given that way."""
        if self.deadman_url_file is not None:
            return self.deadman_url_file.read_text().strip()
        return self.deadman_url.get_secret_value() if self.deadman_url else None


class SilencesConfig(_Model):
    """``silences``: limits and housekeeping of silences."""

    max_duration: Duration = Field(
        default=0.0, ge=0, description="longest silence accepted; 0 means no limit"
    )
    retention: Duration = Field(
        default=5 * 86400.0, gt=0, description="how long expired silences stay listed"
    )


class ConsoleConfig(_Model):
    """``console``: the web console served at ``/``."""

    #: Board files (YAML, globs relative to this file) shown on the overview.
    boards: list[str] = Field(default_factory=list)
    #: Alerts that fire on purpose (dead man's switches): shown apart, never "not OK".
    always_firing: list[str] = Field(default_factory=lambda: ["Watchdog"])
    #: How often open pages refresh; unset, the overview follows its board's ``refresh``.
    refresh: Duration | None = Field(default=None, gt=0)
    #: How long a console login lasts.
    session_lifetime: Duration = Field(default=12 * 3600.0, gt=0)
    #: Pages updated live by Server-Sent Events at once; more poll (0: every page polls).
    live_clients: int = Field(default=50, ge=0, le=10_000)

    def board_paths(self, config: SoulwatchConfig) -> list[Path]:
        """The board files, glob patterns expanded, sorted within each pattern."""
        out: list[Path] = []
        for pattern in self.boards:
            out.extend(Path(m) for m in sorted(glob.glob(str(config.resolve(pattern)))))
        return out


class SoulwatchConfig(_Model):
    """The whole ``soulwatch.yaml``."""

    listen: str = DEFAULT_LISTEN
    data_dir: Path = Path("data")
    external_url: str = ""
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    rule_files: list[str] = Field(default_factory=list)
    rule_evaluation_phase: Literal["after_sources", "spread"] = "after_sources"
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list)
    scrape_config_files: list[str] = Field(default_factory=list)
    alerting: AlertingSection = Field(default_factory=AlertingSection)
    heartbeats: HeartbeatsConfig = Field(default_factory=HeartbeatsConfig)
    silences: SilencesConfig = Field(default_factory=SilencesConfig)
    probes: list[ProbeConfig] = Field(default_factory=list)
    collectors: CollectorsConfig = Field(default_factory=CollectorsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    self_monitoring: SelfMonitoringConfig = Field(default_factory=SelfMonitoringConfig)
    rum: RumConfig = Field(default_factory=RumConfig)
    #: PromQL features behind Prometheus's ``--enable-feature`` flags of the same names.
    enable_features: list[str] = Field(default_factory=list)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    remote_write: list[RemoteWriteConfig] = Field(default_factory=list)
    #: Ruler mode: ``query.remote`` answers PromQL instead of the embedded TSDB.
    query: QueryConfig = Field(default_factory=QueryConfig)
    #: ``agent``: scrape, probe, collect and only remote-write (``soulwatch run --agent``).
    mode: Literal["server", "agent"] = "server"
    ha: HaConfig = Field(default_factory=HaConfig)

    _source: Path | None = PrivateAttr(default=None)
    _source_as_given: str | None = PrivateAttr(default=None)
    _routing: AlertingConfig | None = PrivateAttr(default=None)

    @field_validator("enable_features")
    @classmethod
    def _known_features(cls, value: list[str]) -> list[str]:
        return _features(value)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("external_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        # Every link in a notification starts with it: it must be one.
        problem = url_problem(value) if value else None
        if problem:
            raise ValueError(f"not a valid URL: {value!r} ({problem})")
        return value

    @model_validator(mode="after")
    def _unique_jobs(self) -> SoulwatchConfig:
        names = [job.job_name for job in self.scrape_configs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate scrape job_name(s): {', '.join(dup)}")
        for job in self.scrape_configs:
            job.resolved(self.global_)  # raises for a timeout past the interval
        probes = [p.job_name for p in self.probes]
        dup = sorted({n for n in probes if probes.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate probe job_name(s): {', '.join(dup)}")
        check_unique_names(self.remote_write)
        if self.query.remote is not None and not self.remote_write:
            # The rules would read a store that never gets their results nor the probes'.
            raise ValueError(
                "query.remote needs a remote_write entry: recording rules, ALERTS, probes, "
                "heartbeats and collectors reach the remote store through it"
            )
        self.check_mode()
        return self

    def check_mode(self) -> None:
        """Raise ``ValueError`` if agent mode is asked for with what it cannot honour.

        An agent keeps no queryable store, so it evaluates no rules and
        routes no alerts (as Prometheus's agent mode refuses them), and its
        samples leave only by ``remote_write``.
        """
        if self.mode != "agent":
            return
        if not self.remote_write:
            raise ValueError(
                "agent mode keeps no queryable store and sends every sample by remote write: "
                "add at least one remote_write entry"
            )
        if self.rule_files:
            raise ValueError(
                "rule_files is not allowed in agent mode (an agent evaluates no rules)"
            )
        if self.query.remote is not None:
            raise ValueError(
                "query.remote is not allowed in agent mode (an agent evaluates no rules)"
            )
        section = self.alerting
        if section.alertmanagers or section.config_file is not None or section.inline():
            raise ValueError(
                "alerting is not allowed in agent mode (an agent sends no alerts or notifications)"
            )
        if self.ha.enabled:
            raise ValueError(
                "ha is not allowed in agent mode (an agent sends no notifications to coordinate)"
            )

    def resolved_scrape_configs(self) -> list[ScrapeConfig]:
        """The scrape jobs with interval, timeout and limits filled from ``global``."""
        return [job.resolved(self.global_) for job in self.scrape_configs]

    @property
    def routing(self) -> AlertingConfig | None:
        """The validated Alertmanager configuration (inline or from ``config_file``)."""
        return self._routing

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from, if any."""
        return self._source

    @property
    def source_as_given(self) -> str | None:
        """The config file's path as it was named (Prometheus shows rule files joined onto it)."""
        return self._source_as_given

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config are relative to this directory."""
        return self._source.parent if self._source else Path.cwd()

    def resolve(self, path: str | Path) -> Path:
        """``path`` made absolute against the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def rule_paths(self) -> list[Path]:
        """The rule files, glob patterns expanded, sorted within each pattern."""
        out: list[Path] = []
        for pattern in self.rule_files:
            full = self.resolve(pattern)
            matches = sorted(glob.glob(str(full)))
            out.extend(Path(m) for m in matches)
        return out

    def with_overrides(
        self,
        *,
        data_dir: str | Path | None = None,
        listen: str | None = None,
        enable_features: Sequence[str] = (),
        agent: bool = False,
    ) -> SoulwatchConfig:
        """A copy with command-line overrides applied (features add to the file's).

        ``agent`` (``--agent``) turns agent mode on; ``ConfigError`` says why a
        config cannot run as an agent.
        """
        update: dict[str, Any] = {}
        if agent:
            update["mode"] = "agent"
        if enable_features:
            update["enable_features"] = _features([*self.enable_features, *enable_features])
        if data_dir is not None:
            update["data_dir"] = Path(data_dir).resolve()
        if listen is not None:
            parse_listen(listen)
            update["listen"] = listen
        copy = self.model_copy(update=update)
        copy._source = self._source
        copy._source_as_given = self._source_as_given
        copy._routing = self._routing
        try:
            copy.check_mode()
        except ValueError as exc:
            where = str(self._source) if self._source is not None else None
            raise ConfigError(f"--agent: {exc}", file=where) from None
        return copy


def _features(names: Sequence[str]) -> list[str]:
    """``names`` without repeats; ``ValueError`` naming an unknown one and the known ones."""
    from soulwatch.promql.engine import FEATURES

    unknown = sorted(set(names) - FEATURES)
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} (known: {', '.join(sorted(FEATURES))})")
    return list(dict.fromkeys(names))


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) as a pair; raises ``ValueError``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> SoulwatchConfig:
    """Read and validate ``path``; raises :class:`ConfigError` with ``file:line:col``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError:
        raise ConfigError("config is not UTF-8 text", file=str(file)) from None
    config = parse_config(text, str(file), environ, base_dir=file.resolve().parent)
    config._source = file.resolve()
    config._source_as_given = str(path)
    _check_files(config)
    return config


def parse_config(
    text: str,
    file: str = "<config>",
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
) -> SoulwatchConfig:
    """Validate config ``text``; ``file`` names it in errors.

    With ``base_dir``, relative paths of ``*_file`` settings are made absolute
    against it, as Prometheus resolves them against the config's directory.
    """
    env = os.environ if environ is None else environ
    data, positions = load_yaml(text, file, env, SoulwatchConfig)
    if base_dir is not None:
        data = _absolute_files(data, base_dir)
    try:
        config = SoulwatchConfig.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as exc:
        raise validation_error(exc, SoulwatchConfig, positions) from None
    config._routing = _routing(config, positions, env, base_dir)
    return config


def _routing(
    config: SoulwatchConfig, positions: Positions, env: Mapping[str, str], base_dir: Path | None
) -> AlertingConfig | None:
    section = config.alerting
    inline = section.inline()
    if inline and section.config_file is not None:
        raise positions.error(
            ("alerting", "config_file"),
            "set either alerting.config_file or the Alertmanager keys inline, not both",
            key=True,
        )
    if section.config_file is not None:
        path = section.config_file
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise positions.error(("alerting", "config_file"), f"file not found: {path}")
        return load_alerting_file(path, env=env)
    if not inline:
        return None
    try:
        routing = AlertingConfig.model_validate(inline, context=FILE_CONTEXT)
    except ValidationError as exc:
        raise validation_error(exc, AlertingConfig, positions, prefix=("alerting",)) from None
    nested = {p[1:]: pos for p, pos in positions.values.items() if p[:1] == ("alerting",)}
    check_alerting_references(routing, nested, positions.file)
    routing._base_dir = base_dir or Path.cwd()
    return routing


_CWD_RELATIVE = frozenset({"query_log_file", "scrape_failure_log_file"})


def _absolute_files(value: Any, base: Path) -> Any:
    if isinstance(value, list):
        return [_absolute_files(v, base) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if (
            isinstance(key, str)
            and key.endswith("_file")
            and key not in _CWD_RELATIVE
            and isinstance(item, str)
            and item
        ):
            path = Path(item).expanduser()
            out[key] = str(path if path.is_absolute() else base / path)
        else:
            out[key] = _absolute_files(item, base)
    return out


def _check_files(config: SoulwatchConfig) -> None:
    # Referenced files must exist now, not at the first scrape or page.
    where = str(config.source)
    for pattern in config.rule_files:
        if not any(ch in pattern for ch in "*?[") and not config.resolve(pattern).is_file():
            raise ConfigError(f"rule file not found: {pattern}", file=where)
    for token in config.auth.tokens:
        if token.token_file is not None and not token.token_file.is_file():
            raise ConfigError(f"auth token_file not found: {token.token_file}", file=where)
