"""Scrape configuration: Prometheus's ``scrape_configs`` schema as pydantic models.

The ``global`` and ``scrape_configs`` sections of an existing ``prometheus.yml``
load unchanged. A key Prometheus does not know is an error naming the key and
its line; a key Prometheus knows but soulwatch does not implement (service
discovery, OAuth2, proxies) is an error saying so, rather than being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from soulwatch.config_loading import compose_checked, construct
from soulwatch.duration import FILE_CONTEXT, Duration, format_duration, parse_duration
from soulwatch.exceptions import ConfigError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")
_SIZE_UNITS = {
    "B": 1,
    "KB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
    "TB": 1024**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}


def parse_size(value: Any) -> int:
    """A byte size as Prometheus writes it (``"10MB"``, ``"512KiB"``; MB means MiB), or bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value).strip())
    if match is None:
        raise ValueError(f"not a valid size: {value!r} (use e.g. '10MB')")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"])


ByteSize = Annotated[int, BeforeValidator(parse_size)]

#: Keys Prometheus accepts in a scrape config that soulwatch does not implement.
UNSUPPORTED_KEYS = frozenset(
    {
        "proxy_url",
        "no_proxy",
        "proxy_from_environment",
        "proxy_connect_header",
        "oauth2",
        "sigv4",
    }
)

ScrapeProtocol = Literal[
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
    "PrometheusProto",
]
_PROTOCOL_MEDIA = {
    "OpenMetricsText1.0.0": "application/openmetrics-text;version=1.0.0",
    "OpenMetricsText0.0.1": "application/openmetrics-text;version=0.0.1",
    "PrometheusText1.0.0": "text/plain;version=1.0.0",
    "PrometheusText0.0.4": "text/plain;version=0.0.4",
}
#: Prometheus 2.x's default order of preference.
DEFAULT_SCRAPE_PROTOCOLS: tuple[ScrapeProtocol, ...] = (
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText0.0.4",
)


def accept_header(protocols: Sequence[str]) -> str:
    """The ``Accept`` header for ``scrape_protocols``, weighted in order as Prometheus does."""
    parts = []
    for i, proto in enumerate(protocols):
        media = _PROTOCOL_MEDIA[proto]
        parts.append(media if i == 0 else f"{media};q={max(0.2, 1 - 0.25 * i):.2g}")
    parts.append("*/*;q=0.1")
    return ",".join(parts)


def _check_protocols(protocols: list[ScrapeProtocol] | None) -> None:
    if protocols is not None:
        if not protocols:
            raise ValueError("scrape_protocols must not be empty")
        if "PrometheusProto" in protocols:
            raise ValueError("scrape protocol 'PrometheusProto' is not supported by soulwatch")
        if len(set(protocols)) != len(protocols):
            raise ValueError("scrape_protocols has duplicates")


class HTTPHeader(BaseModel):
    """One entry of Prometheus 3's ``http_headers``: literal values, secrets or files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Authorization(_Model):
    """The ``Authorization`` header: ``type`` and ``credentials`` (or a file holding them)."""

    type: str = "Bearer"
    credentials: str | None = None
    credentials_file: str | None = None


class BasicAuth(_Model):
    """HTTP basic authentication."""

    username: str
    password: str | None = None
    password_file: str | None = None


class TLSConfig(_Model):
    """TLS settings for an ``https`` target."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None


class StaticConfig(_Model):
    """A static list of ``host:port`` targets sharing extra labels."""

    targets: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _no_credentials(cls, targets: list[str]) -> list[str]:
        for target in targets:
            if "@" in target:
                shown = "...@" + target.rsplit("@", 1)[1]
                raise ValueError(
                    f"target {shown!r} has credentials in it; they would show in the "
                    "'instance' label: set basic_auth (with password_file) or "
                    "authorization on the job instead"
                )
        return targets


RelabelAction = Literal[
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
]


class RelabelConfig(_Model):
    """One relabeling step, with Prometheus's defaults."""

    source_labels: list[str] = Field(default_factory=list)
    separator: str = ";"
    regex: str = "(.*)"
    target_label: str | None = None
    replacement: str = "$1"
    modulus: int | None = None
    action: RelabelAction = "replace"

    @model_validator(mode="after")
    def _check(self) -> RelabelConfig:
        try:
            re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None
        needs_target = {"replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal"}
        if self.action in needs_target and not self.target_label:
            raise ValueError(f"relabel action {self.action!r} requires 'target_label'")
        if self.action == "hashmod" and not self.modulus:
            raise ValueError("relabel action 'hashmod' requires a non-zero 'modulus'")
        return self


#: Prometheus's scrape timeout when neither the job nor ``global`` sets one.
DEFAULT_SCRAPE_TIMEOUT = 10.0


class GlobalConfig(_Model):
    """The parts of Prometheus's ``global`` section that scraping uses (others are accepted)."""

    scrape_interval: Duration = 60.0
    scrape_timeout: Duration = DEFAULT_SCRAPE_TIMEOUT
    evaluation_interval: Duration = 60.0
    external_labels: dict[str, str] = Field(default_factory=dict)
    query_log_file: str | None = None
    body_size_limit: ByteSize = 0
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    target_limit: int = 0
    keep_dropped_targets: int = 0
    scrape_protocols: list[ScrapeProtocol] | None = None
    rule_query_offset: Duration = 0.0
    scrape_failure_log_file: str | None = None
    metric_name_validation_scheme: Literal["legacy", "utf8"] = "legacy"
    metric_name_escaping_scheme: str | None = None
    always_scrape_classic_histograms: bool = False
    convert_classic_histograms_to_nhcb: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        # As Prometheus: an unset timeout is min(10s, scrape_interval), so
        # ``scrape_interval: 1s`` alone is valid.
        if not isinstance(data, dict) or data.get("scrape_timeout") is not None:
            return data
        interval = data.get("scrape_interval", "1m")
        try:
            seconds = parse_duration(interval) if isinstance(interval, str) else float(interval)
        except (TypeError, ValueError):
            return data  # the field's own validation reports it
        return {**data, "scrape_timeout": format_duration(min(DEFAULT_SCRAPE_TIMEOUT, seconds))}

    @model_validator(mode="after")
    def _check(self) -> GlobalConfig:
        _check_protocols(self.scrape_protocols)
        if self.scrape_timeout > self.scrape_interval:
            raise ValueError(
                f"global scrape timeout ({format_duration(self.scrape_timeout)}) is greater "
                f"than the scrape interval ({format_duration(self.scrape_interval)})"
            )
        return self


#: soulwatch's default cap on a scrape body when none is configured (Prometheus has none).
DEFAULT_BODY_SIZE_LIMIT = 64 * 1024 * 1024


class ScrapeConfig(_Model):
    """One ``scrape_configs`` entry: a job and its targets.

    ``scrape_interval``/``scrape_timeout`` left unset take the global values
    when loaded through :func:`load_prometheus_config` (or :meth:`resolved`).
    ``headers`` and ``series_limit`` are soulwatch additions.
    """

    job_name: str = Field(min_length=1)
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    metrics_path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"
    params: dict[str, list[str]] = Field(default_factory=dict)
    honor_labels: bool = False
    honor_timestamps: bool = True
    track_timestamps_staleness: bool = False
    static_configs: list[StaticConfig] = Field(default_factory=list)
    relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    metric_relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    authorization: Authorization | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None
    tls_config: TLSConfig | None = None
    follow_redirects: bool = True
    enable_http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    http_headers: dict[str, HTTPHeader] = Field(default_factory=dict)
    scrape_protocols: list[ScrapeProtocol] | None = None
    fallback_scrape_protocol: ScrapeProtocol | None = None
    enable_compression: bool = True
    scrape_failure_log_file: str | None = None
    metric_name_validation_scheme: Literal["legacy"] | None = None
    metric_name_escaping_scheme: str | None = None
    scrape_classic_histograms: bool = False
    always_scrape_classic_histograms: bool = False
    scrape_native_histograms: Literal[False] = False
    convert_classic_histograms_to_nhcb: Literal[False] = False
    native_histogram_bucket_limit: int = 0
    native_histogram_min_bucket_factor: float = 0.0
    keep_dropped_targets: int = 0
    body_size_limit: ByteSize = 0
    sample_limit: int = Field(default=0, ge=0)
    label_limit: int = Field(default=0, ge=0)
    label_name_length_limit: int = Field(default=0, ge=0)
    label_value_length_limit: int = Field(default=0, ge=0)
    target_limit: int = Field(default=0, ge=0)
    series_limit: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _reject_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key in UNSUPPORTED_KEYS or (
                    isinstance(key, str) and key.endswith("_sd_configs")
                ):
                    raise ValueError(f"{key!r} is a Prometheus setting soulwatch does not support")
        return data

    @model_validator(mode="after")
    def _check(self) -> ScrapeConfig:
        _check_protocols(self.scrape_protocols)
        auths = [
            name
            for name, value in (
                ("authorization", self.authorization),
                ("bearer_token", self.bearer_token),
                ("bearer_token_file", self.bearer_token_file),
                ("basic_auth", self.basic_auth),
            )
            if value is not None
        ]
        if len(auths) > 1:
            raise ValueError(f"at most one of {', '.join(auths)} may be set")
        if (
            self.scrape_interval is not None
            and self.scrape_timeout is not None
            and self.scrape_timeout > self.scrape_interval
        ):
            raise ValueError(
                f"scrape_timeout ({format_duration(self.scrape_timeout)}) is greater than "
                f"scrape_interval ({format_duration(self.scrape_interval)})"
            )
        return self

    def resolved(self, global_: GlobalConfig | None = None) -> ScrapeConfig:
        """A copy with interval, timeout and limits filled from ``global_`` as Prometheus does."""
        g = global_ or GlobalConfig()
        # as in Prometheus, a zero duration is the same as leaving the key out
        interval = self.scrape_interval or g.scrape_interval
        if interval <= 0:
            raise ValueError(f"job {self.job_name!r}: scrape_interval must be positive")
        timeout = self.scrape_timeout or None
        if timeout is None:
            timeout = min(g.scrape_timeout, interval)
        if timeout > interval:
            raise ValueError(
                f"job {self.job_name!r}: scrape_timeout ({format_duration(timeout)}) is greater "
                f"than scrape_interval ({format_duration(interval)})"
            )
        update: dict[str, Any] = {"scrape_interval": interval, "scrape_timeout": timeout}
        if self.scrape_protocols is None and g.scrape_protocols is not None:
            update["scrape_protocols"] = g.scrape_protocols
        for name in (
            "body_size_limit",
            "sample_limit",
            "label_limit",
            "label_name_length_limit",
            "label_value_length_limit",
            "target_limit",
        ):
            if getattr(self, name) == 0:
                update[name] = getattr(g, name)
        return self.model_copy(update=update)

    @property
    def accept(self) -> str:
        """The ``Accept`` header this job sends."""
        return accept_header(self.scrape_protocols or DEFAULT_SCRAPE_PROTOCOLS)

    def header_values(self) -> dict[str, str]:
        """Extra request headers: ``headers`` and the literal values of ``http_headers``."""
        out = dict(self.headers)
        for name, header in self.http_headers.items():
            values = header.values + header.secrets
            for path in header.files:
                values.append(Path(path).read_text(encoding="utf-8").strip())
            if values:
                out[name] = ", ".join(values)
        return out

    @property
    def interval(self) -> float:
        """The scrape interval in seconds (after :meth:`resolved`)."""
        return self.scrape_interval if self.scrape_interval is not None else 60.0

    @property
    def timeout(self) -> float:
        """The scrape timeout in seconds (after :meth:`resolved`)."""
        return self.scrape_timeout if self.scrape_timeout is not None else min(10.0, self.interval)


class PrometheusConfig(BaseModel):
    """The ``global`` and ``scrape_configs`` of a ``prometheus.yml``.

    Other top-level sections (``rule_files``, ``alerting``, ``remote_write``...)
    belong to other parts of soulwatch and are not read here.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_jobs(self) -> PrometheusConfig:
        seen: set[str] = set()
        for sc in self.scrape_configs:
            if sc.job_name in seen:
                raise ValueError(f"found multiple scrape configs with job name {sc.job_name!r}")
            seen.add(sc.job_name)
        return self

    def resolved_scrape_configs(self) -> list[ScrapeConfig]:
        """Every scrape config with the global defaults applied."""
        return [sc.resolved(self.global_) for sc in self.scrape_configs]


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(text: str, model: type[M], *, file: str | None = None) -> M:
    """Parse YAML ``text`` into ``model``; errors name the file, line, column and key."""
    node = compose_checked(text, file)
    data = construct(node) if node is not None else None
    try:
        return model.model_validate(data if data is not None else {}, context=FILE_CONTEXT)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line, column = _position(node, loc)
        path = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} at {path}"
        else:
            message = f"{path}: {err['msg']}" if path else str(err["msg"])
        raise ConfigError(message, file=file, line=line, column=column) from None


def _position(node: yaml.Node | None, loc: Sequence[Any]) -> tuple[int | None, int | None]:
    """The line/column of the deepest YAML node that ``loc`` reaches."""
    if node is None:
        return None, None
    best = node
    current: yaml.Node | None = node
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == part or key_node.value == str(part).rstrip("_"):
                    # an unknown key is reported where the key itself is written
                    nxt = value_node if part != loc[-1] else key_node
                    break
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(current.value)
        ):
            nxt = current.value[part]
        if nxt is None:
            continue
        best = current = nxt
    return best.start_mark.line + 1, best.start_mark.column + 1


def load_prometheus_config(text: str, *, file: str | None = None) -> PrometheusConfig:
    """Load the scraping part of a ``prometheus.yml`` from its text."""
    try:
        return load_yaml_model(text, PrometheusConfig, file=file)
    except ValueError as exc:  # pragma: no cover - pydantic wraps validator errors
        raise ConfigError(str(exc), file=file) from None


def load_prometheus_file(path: str | Path) -> PrometheusConfig:
    """Load the scraping part of a ``prometheus.yml`` file."""
    p = Path(path)
    return load_prometheus_config(p.read_text(encoding="utf-8"), file=str(p))


def resolve_scrape_configs(
    entries: Sequence[Mapping[str, Any]], global_: Any = None, *, file: str | None = None
) -> list[ScrapeConfig]:
    """Validate raw ``scrape_configs`` entries and apply the global defaults.

    ``global_`` is a mapping (the ``global`` section) or any object with the
    same attribute names (e.g. soulwatch.yaml's own global model); keys this
    module does not use are ignored. Errors name ``scrape_configs.<i>``.
    """
    known = GlobalConfig.model_fields
    if global_ is None:
        raw: dict[str, Any] = {}
    elif isinstance(global_, Mapping):
        raw = {k: v for k, v in global_.items() if k in known}
    else:
        raw = {k: getattr(global_, k) for k in known if getattr(global_, k, None) is not None}
    try:
        g = GlobalConfig.model_validate(
            raw, context=FILE_CONTEXT if isinstance(global_, Mapping) else None
        )
    except ValidationError as exc:
        raise ConfigError(f"global: {exc.errors()[0]['msg']}", file=file) from None
    out: list[ScrapeConfig] = []
    for i, entry in enumerate(entries):
        try:
            out.append(ScrapeConfig.model_validate(entry, context=FILE_CONTEXT).resolved(g))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (f"scrape_configs.{i}", *err["loc"]))
            if err["type"] == "extra_forbidden":
                raise ConfigError(f"unknown key {err['loc'][-1]!r} at {where}", file=file) from None
            raise ConfigError(f"{where}: {err['msg']}", file=file) from None
        except ValueError as exc:
            raise ConfigError(f"scrape_configs.{i}: {exc}", file=file) from None
    return out
