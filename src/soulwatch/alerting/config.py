"""The routing configuration: the subset of Alertmanager's ``alertmanager.yml`` soulwatch runs.

The same file works in both: :func:`load_config` reads a real
``alertmanager.yml`` (unknown keys are rejected with a did-you-mean, errors
name the file, line and column) and :mod:`soulwatch.alerting.export` writes
one back that ``amtool check-config`` accepts. A few soulwatch-only keys
(``github_configs``, ``alertmanager_configs``, ``actions``, ``delivery``,
``external_url``, a webhook's ``hmac_secret``) are dropped on export.

Durations use Alertmanager's syntax (``30s``, ``5m``, ``1h30m``, ``1d``).
Secrets can be given inline, as ``${ENV_VAR}``, or as a ``*_file`` path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from soulwatch.alerting._yaml import did_you_mean, load_located, locate
from soulwatch.alerting.matchers import MatcherSyntaxError, legacy_matchers, parse_matchers
from soulwatch.duration import FILE_CONTEXT, Duration
from soulwatch.exceptions import ConfigError
from soulwatch.redaction import redact_url
from soulwatch.tsdb.model import Matcher

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _check_url(value: str | None) -> str | None:
    """An absolute ``http(s)://host...`` URL, as Alertmanager requires of receiver URLs."""
    if value is None:
        return None
    problem = url_problem(value)
    if problem:
        raise ValueError(f"not a valid URL: {redact_url(value)!r} ({problem})")
    return value


def url_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute http(s) URL, or ``None`` when it is one."""
    if any(ch.isspace() for ch in value):
        return "it contains whitespace"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises for a port that is not a number
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return f"unsupported scheme {parts.scheme!r}; use http or https"
    if not parts.hostname:
        return "it has no host"
    return None


#: A receiver, action or API URL: checked when the config is loaded.
Url = Annotated[str, AfterValidator(_check_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BasicAuth(_Model):
    """HTTP basic authentication."""

    username: str = ""
    password: str | None = None
    password_file: str | None = None


class HTTPConfig(_Model):
    """The subset of Alertmanager's ``http_config`` soulwatch honours."""

    bearer_token: str | None = None
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None


class WebhookConfig(_Model):
    """A generic webhook: Alertmanager's JSON payload (version 4)."""

    url: Url | None = None
    url_file: str | None = None
    send_resolved: bool = True
    max_alerts: int = Field(0, ge=0)
    http_config: HTTPConfig | None = None
    #: soulwatch extension: sign the body with HMAC-SHA256 (header ``X-Soulwatch-Signature``).
    hmac_secret: str | None = None
    hmac_secret_file: str | None = None

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("exactly one of url and url_file is required")
        return self


class SlackConfig(_Model):
    """A Slack incoming webhook (a Block Kit message)."""

    api_url: Url | None = None
    api_url_file: str | None = None
    channel: str | None = None
    username: str | None = None
    send_resolved: bool = True


class PagerDutyConfig(_Model):
    """PagerDuty Events API v2."""

    routing_key: str | None = None
    routing_key_file: str | None = None
    url: Url | None = None
    client: str = "soulwatch"
    client_url: Url | None = None
    severity: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = True

    @model_validator(mode="after")
    def _one_key(self) -> PagerDutyConfig:
        if (self.routing_key is None) == (self.routing_key_file is None):
            raise ValueError("exactly one of routing_key and routing_key_file is required")
        return self


class EmailConfig(_Model):
    """Email over SMTP; port 465 means implicit TLS, otherwise STARTTLS if ``require_tls``."""

    to: str
    from_: str | None = Field(None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: str | None = None
    auth_password_file: str | None = None
    require_tls: bool | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = True


class GitHubConfig(_Model):
    """soulwatch extension: one GitHub issue per alert group (opened, commented, closed)."""

    repository: str
    token: str | None = None
    token_file: str | None = None
    api_url: Url = "https://api.github.com"
    labels: list[str] = Field(default_factory=list)
    send_resolved: bool = True

    @field_validator("repository")
    @classmethod
    def _owner_name(cls, value: str) -> str:
        if value.count("/") != 1 or not all(value.split("/")):
            raise ValueError(f"repository must be 'owner/name', got {value!r}")
        return value


class AlertmanagerForwardConfig(_Model):
    """soulwatch extension: forward alerts to an Alertmanager's ``/api/v2/alerts``."""

    url: Url
    http_config: HTTPConfig | None = None
    send_resolved: bool = True


class DiscordConfig(_Model):
    """A Discord webhook (Alertmanager's ``discord_configs``)."""

    webhook_url: Url | None = None
    webhook_url_file: str | None = None
    send_resolved: bool = True


class MSTeamsConfig(_Model):
    """A Microsoft Teams incoming webhook (Alertmanager's ``msteams_configs``)."""

    webhook_url: Url | None = None
    webhook_url_file: str | None = None
    send_resolved: bool = True


class SoulcasterConfig(_Model):
    """soulwatch extension: each alert becomes Soulcaster feedback through its Datadog intake."""

    url: str
    project_id: str = Field(min_length=1)
    webhook_secret: str | None = None
    webhook_secret_file: str | None = None
    #: A recovery is not something to fix: off unless asked for.
    send_resolved: bool = False
    max_body: int = Field(16_000, ge=1_000, le=200_000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must be the backend's http(s):// base URL, got {value!r}")
        return value


IntegrationKind = Literal[
    "webhook",
    "slack",
    "pagerduty",
    "email",
    "github",
    "alertmanager",
    "discord",
    "msteams",
    "soulcaster",
]
IntegrationConfig = (
    WebhookConfig
    | SlackConfig
    | PagerDutyConfig
    | EmailConfig
    | GitHubConfig
    | AlertmanagerForwardConfig
    | DiscordConfig
    | MSTeamsConfig
    | SoulcasterConfig
)


class Receiver(_Model):
    """A named set of integrations; a receiver with none drops notifications."""

    name: str
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerDutyConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    github_configs: list[GitHubConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerForwardConfig] = Field(default_factory=list)
    discord_configs: list[DiscordConfig] = Field(default_factory=list)
    msteams_configs: list[MSTeamsConfig] = Field(default_factory=list)
    soulcaster_configs: list[SoulcasterConfig] = Field(default_factory=list)

    def integrations(self) -> list[tuple[IntegrationKind, int, IntegrationConfig]]:
        """Every integration as ``(kind, index, config)``."""
        out: list[tuple[IntegrationKind, int, IntegrationConfig]] = []
        kinds: tuple[tuple[IntegrationKind, list[Any]], ...] = (
            ("webhook", self.webhook_configs),
            ("slack", self.slack_configs),
            ("pagerduty", self.pagerduty_configs),
            ("email", self.email_configs),
            ("github", self.github_configs),
            ("alertmanager", self.alertmanager_configs),
            ("discord", self.discord_configs),
            ("msteams", self.msteams_configs),
            ("soulcaster", self.soulcaster_configs),
        )
        for kind, configs in kinds:
            out.extend((kind, i, c) for i, c in enumerate(configs))
        return out


def _parsed(values: list[str]) -> list[Matcher]:
    out: list[Matcher] = []
    for item in values:
        try:
            out.extend(parse_matchers(item))
        except MatcherSyntaxError as exc:
            raise ValueError(str(exc)) from exc
    return out


class Route(_Model):
    """A node of the routing tree; unset fields are inherited from the parent."""

    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(False, alias="continue")
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    _matchers: list[Matcher] = PrivateAttr(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, values: list[str]) -> list[str]:
        _parsed(values)
        return values

    @field_validator("match_re")
    @classmethod
    def _check_regex(cls, values: dict[str, str]) -> dict[str, str]:
        for name, pattern in values.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex for {name}: {exc}") from exc
        return values

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if "..." in values and len(values) > 1:
            raise ValueError("'...' must be the only element of group_by")
        for name in values:
            if name != "..." and not _LABEL_NAME.match(name):
                raise ValueError(f"invalid label name {name!r} in group_by")
        return values

    @model_validator(mode="after")
    def _build(self) -> Route:
        self._matchers = legacy_matchers(self.match, self.match_re) + _parsed(self.matchers)
        return self

    @property
    def all_matchers(self) -> list[Matcher]:
        """``match``, ``match_re`` and ``matchers`` together."""
        return self._matchers


class InhibitRule(_Model):
    """Mute target alerts while a matching source alert fires with equal ``equal`` labels."""

    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)
    _source: list[Matcher] = PrivateAttr(default_factory=list)
    _target: list[Matcher] = PrivateAttr(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _check(cls, values: list[str]) -> list[str]:
        _parsed(values)
        return values

    @model_validator(mode="after")
    def _build(self) -> InhibitRule:
        self._source = legacy_matchers(self.source_match, self.source_match_re) + _parsed(
            self.source_matchers
        )
        self._target = legacy_matchers(self.target_match, self.target_match_re) + _parsed(
            self.target_matchers
        )
        return self

    @property
    def source(self) -> list[Matcher]:
        """All source matchers."""
        return self._source

    @property
    def target(self) -> list[Matcher]:
        """All target matchers."""
        return self._target


class TimeRange(_Model):
    """``HH:MM`` to ``HH:MM`` within a day (end exclusive; ``24:00`` allowed)."""

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        m = re.fullmatch(r"(\d{2}):(\d{2})", value)
        if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
            raise ValueError(f"time must be HH:MM, got {value!r}")
        if int(m.group(1)) == 24 and int(m.group(2)) != 0:
            raise ValueError(f"time must be at most 24:00, got {value!r}")
        return value


class TimeIntervalSpec(_Model):
    """One Alertmanager time interval: every given field must match."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"


class NamedTimeInterval(_Model):
    """A named list of time intervals (any of them matching means 'in the interval')."""

    name: str
    time_intervals: list[TimeIntervalSpec] = Field(default_factory=list)


class HTTPAction(_Model):
    """An HTTP request made as an automatic recovery action."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Url
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""


class ActionConfig(_Model):
    """soulwatch extension: a recovery action, named by an alert's ``action`` label/annotation."""

    name: str
    http: HTTPAction | None = None
    command: list[str] | None = None
    cooldown: Duration = 600.0
    max_attempts: int = Field(3, ge=1)
    verify_after: Duration = 300.0
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _one_kind(self) -> ActionConfig:
        if (self.http is None) == (self.command is None):
            raise ValueError("an action needs exactly one of http and command")
        return self


class DeliveryConfig(_Model):
    """soulwatch extension: how the outbox retries."""

    initial_backoff: Duration = 1.0
    max_backoff: Duration = 300.0
    deadline: Duration = 6 * 3600.0
    timeout: Duration = 10.0
    #: delivered, failed and expired rows are deleted after this long
    retention: Duration = 7 * 86400.0
    #: notifications kept in memory while the outbox cannot be written (a full disk)
    max_held: Annotated[int, Field(ge=1)] = 1000


class GlobalConfig(_Model):
    """Alertmanager's ``global`` section (the keys soulwatch uses)."""

    resolve_timeout: Duration = 300.0
    smtp_from: str | None = None
    smtp_smarthost: str | None = None
    smtp_hello: str | None = None
    smtp_auth_username: str | None = None
    smtp_auth_password: str | None = None
    smtp_auth_password_file: str | None = None
    smtp_require_tls: bool = True
    slack_api_url: Url | None = None
    slack_api_url_file: str | None = None
    pagerduty_url: Url = "https://events.pagerduty.com/v2/enqueue"


class AlertingConfig(_Model):
    """The whole routing configuration (an ``alertmanager.yml`` plus soulwatch extensions)."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: Route
    receivers: list[Receiver] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    external_url: Url = "http://localhost:9090"
    actions: list[ActionConfig] = Field(default_factory=list)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    def receiver(self, name: str) -> Receiver:
        """The receiver called ``name`` (KeyError if none)."""
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)

    def intervals(self) -> dict[str, list[TimeIntervalSpec]]:
        """Every named time interval (both sections)."""
        return {t.name: t.time_intervals for t in [*self.time_intervals, *self.mute_time_intervals]}

    def action(self, name: str) -> ActionConfig | None:
        """The action called ``name``, if configured."""
        return next((a for a in self.actions if a.name == name), None)

    @property
    def base_dir(self) -> Path:
        """The directory relative ``*_file`` paths are resolved against."""
        return self._base_dir


def read_secret(value: str | None, file: str | None, *, base_dir: Path, what: str) -> str | None:
    """A secret given inline or as a file (relative to ``base_dir``), stripped of whitespace."""
    if value is not None:
        return value
    if file is None:
        return None
    path = Path(file)
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} from {path}: {exc.strerror}") from exc


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> AlertingConfig:
    """Load and check an ``alertmanager.yml``-style file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(p)) from exc
    config = parse_config(text, file=str(p), env=env)
    config._base_dir = p.resolve().parent
    return config


def parse_config(
    text: str, *, file: str | None = None, env: Mapping[str, str] | None = None
) -> AlertingConfig:
    """Parse and check configuration text; errors carry file, line and column."""
    data, positions = load_located(text, file=file, env=env)
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping", file=file, line=1, column=1)
    try:
        config = AlertingConfig.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as exc:
        raise _first_error(exc, positions, file) from None
    check_references(config, positions, file)
    return config


def _first_error(
    exc: ValidationError,
    positions: Mapping[tuple[str | int, ...], tuple[int, int]],
    file: str | None,
) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = _model_at(loc[:-1])
        hint = did_you_mean(key, _field_names(parent)) if parent else ""
        where = positions.get((*loc, "__key__")) or locate(positions, loc)
        message = (
            f"unknown key {key!r} in {'.'.join(str(p) for p in loc[:-1]) or 'top level'}{hint}"
        )
    else:
        where = locate(positions, loc)
        msg = err["msg"].removeprefix("Value error, ")
        message = f"{dotted}: {msg}" if dotted else msg
    line, column = where if where else (None, None)
    return ConfigError(message, file=file, line=line, column=column)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that a validation path points into."""
    model: type[BaseModel] = AlertingConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        inner = _model_of(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def check_references(
    config: AlertingConfig,
    positions: Mapping[tuple[str | int, ...], tuple[int, int]],
    file: str | None,
) -> None:
    """Check what a schema cannot: referenced receivers and intervals exist, names are unique.

    ``positions`` maps key paths to ``(line, column)`` for the error message.
    """

    def fail(message: str, loc: tuple[str | int, ...]) -> ConfigError:
        where = locate(positions, loc)
        return ConfigError(
            message, file=file, line=where[0] if where else None, column=where[1] if where else None
        )

    names: set[str] = set()
    for i, r in enumerate(config.receivers):
        if r.name in names:
            raise fail(f"receiver {r.name!r} is defined twice", ("receivers", i, "name"))
        names.add(r.name)
    intervals = set()
    for section in ("time_intervals", "mute_time_intervals"):
        for i, t in enumerate(getattr(config, section)):
            if t.name in intervals:
                raise fail(f"time interval {t.name!r} is defined twice", (section, i, "name"))
            intervals.add(t.name)
    if config.route.receiver is None:
        raise fail("the root route must have a receiver", ("route",))
    if config.route.all_matchers:
        raise fail("the root route must not have any matchers", ("route",))
    if config.route.mute_time_intervals or config.route.active_time_intervals:
        raise fail("the root route must not have time intervals", ("route",))
    for i, a in enumerate(config.actions):
        if sum(1 for b in config.actions if b.name == a.name) > 1:
            raise fail(f"action {a.name!r} is defined twice", ("actions", i, "name"))

    def walk(route: Route, loc: tuple[str | int, ...]) -> None:
        if route.receiver is not None and route.receiver not in names:
            raise fail(
                f"undefined receiver {route.receiver!r} used in route"
                + did_you_mean(route.receiver, names),
                (*loc, "receiver"),
            )
        for key in ("mute_time_intervals", "active_time_intervals"):
            for j, name in enumerate(getattr(route, key)):
                if name not in intervals:
                    raise fail(f"undefined time interval {name!r} used in route", (*loc, key, j))
        for j, child in enumerate(route.routes):
            walk(child, (*loc, "routes", j))

    walk(config.route, ("route",))


# The name the main config loader first imported; kept so it keeps working.
_check_references = check_references
