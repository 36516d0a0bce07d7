"""The scenario file: its typed model and its loader.

A scenario names the configuration under test (a ``soulwatch.yaml`` path, or
its sections inline), a start time and a timeline of steps at times relative
to the start. Inputs (``samples``, ``ping``, ``silence``, ``expire_silence``)
change the world; ``expect`` and ``expect_none`` check the notifications that
went out since the previous check. ``docs/scenarios.md`` describes the format.

:func:`load_scenario` reports every problem as ``file:line:col: message``,
including those of an inline configuration and of series notation.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from soulwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from soulwatch.config import SoulwatchConfig, load_config, parse_config
from soulwatch.config_loading import Positions, validation_error
from soulwatch.duration import Duration, format_duration
from soulwatch.exceptions import ConfigError
from soulwatch.rules.series_notation import NotationError, parse_metric, parse_values
from soulwatch.tsdb.model import Labels, Matcher

#: The start time when a scenario names none (a Monday, so weekday mutes are easy to read).
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PingStep(_Model):
    """``ping``: a heartbeat ping of one check (healthchecks.io semantics)."""

    check: str = Field(min_length=1)
    kind: Literal["success", "start", "fail"] = "success"


class SilenceStep(_Model):
    """``silence``: create a silence now, for ``duration``."""

    id: str | None = None
    matchers: list[str] = Field(min_length=1)
    duration: Duration
    comment: str = "scenario silence"
    created_by: str = "scenario"

    @field_validator("matchers", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a silence needs a positive duration")
        return value


class ExpectedNotification(_Model):
    """One notification that must have gone out (every given field must match)."""

    receiver: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    alerts: int | None = Field(default=None, ge=1)
    between: tuple[Duration, Duration] | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _label_strings(cls, value: Any) -> Any:
        # YAML reads `code: 500` as a number; a label value is always a string.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else _yaml_scalar(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ExpectedNotification:
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: the first time must not be after the second")
        return self

    def describe(self) -> str:
        """One line: receiver, status, alert name, labels and window."""
        parts = [self.receiver, self.status, self.alertname or "(any alert)"]
        if self.labels:
            parts.append(_labels_text(self.labels))
        if self.alerts is not None:
            parts.append(f"({self.alerts} alert{'s' if self.alerts != 1 else ''})")
        if self.between is not None:
            a, b = self.between
            parts.append(
                f"at {format_duration(a)}"
                if a == b
                else f"between {format_duration(a)} and {format_duration(b)}"
            )
        return " ".join(parts)


class Step(_Model):
    """One entry of ``timeline``: a time and what happens or is checked then."""

    at: Duration
    samples: dict[str, str] | None = None
    interval: Duration | None = None
    ping: PingStep | list[PingStep] | None = None
    silence: SilenceStep | None = None
    expire_silence: str | None = None
    expect: list[ExpectedNotification] | None = None
    expect_none: Literal[True] | None = None

    @field_validator("samples", mode="before")
    @classmethod
    def _values_text(cls, value: Any) -> Any:
        # `'up': 1` is a one-value series: accept YAML numbers as values.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else _yaml_scalar(v) for k, v in value.items()}
        return value

    @field_validator("ping", mode="before")
    @classmethod
    def _ping_shorthand(cls, value: Any) -> Any:
        # `ping: reddit-poller` is a success ping of that check.
        if isinstance(value, str):
            return {"check": value}
        if isinstance(value, list):
            return [{"check": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _something(self) -> Step:
        if self.interval is not None and self.samples is None:
            raise ValueError("interval applies to samples: add samples or remove interval")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.expect is not None and self.expect_none is not None:
            raise ValueError("use either expect or expect_none in one step, not both")
        actions = (
            self.samples,
            self.ping,
            self.silence,
            self.expire_silence,
            self.expect,
            self.expect_none,
        )
        if all(a is None for a in actions):
            raise ValueError(
                "a step needs one of samples, ping, silence, expire_silence, expect, expect_none"
            )
        return self

    @property
    def pings(self) -> list[PingStep]:
        """The pings of this step as a list."""
        if self.ping is None:
            return []
        return self.ping if isinstance(self.ping, list) else [self.ping]

    @property
    def checks(self) -> bool:
        """Whether this step checks notifications."""
        return self.expect is not None or self.expect_none is not None


class ScenarioFile(_Model):
    """The whole scenario file as written."""

    name: str | None = None
    description: str = ""
    config: str | dict[str, Any]
    env: dict[str, str] = Field(default_factory=dict)
    start: datetime = DEFAULT_START
    interval: Duration | None = None
    timeline: list[Step] = Field(min_length=1)

    @field_validator("start", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        return value


@dataclass(frozen=True)
class SeriesInput:
    """One series of a ``samples`` step, expanded: values from the step time on."""

    labels: Labels
    values: list[float | None]


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario, ready to run."""

    file: Path
    name: str
    description: str
    config: SoulwatchConfig
    start: float
    steps: list[Step]
    lines: list[int]
    series: dict[int, list[SeriesInput]]
    intervals: dict[int, float]
    silence_matchers: dict[int, list[Matcher]]


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("...").strip()


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def load_scenario(path: str | Path, environ: Mapping[str, str] | None = None) -> Scenario:
    """Read and validate a scenario file; raises :class:`ConfigError` with ``file:line:col``.

    ``environ`` fills ``${VAR}`` references of the configuration under test
    (the scenario's own ``env`` takes precedence); nothing is read from the
    process environment unless it is passed here.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError:
        raise ConfigError("scenario is not UTF-8 text", file=str(file)) from None
    where = str(file)
    data, positions = _load_yaml(text, where)
    try:
        raw = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, ScenarioFile, positions) from None
    env = {**(environ or {}), **raw.env}
    base = file.resolve().parent
    if isinstance(raw.config, str):
        config_path = base / raw.config
        if not config_path.is_file():
            raise positions.error(("config",), f"config file not found: {config_path}")
        config = load_config(config_path, env)
    else:
        config = _inline_config(text, where, positions, env, base)
    return _check(file, raw, config, positions)


def _load_yaml(text: str, where: str) -> tuple[Any, Positions]:
    """The document and its positions, without environment expansion.

    ``${VAR}`` and ``*_env`` keys belong to the configuration under test: its
    own loader expands them, with the scenario's ``env``.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}",
            file=where,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=where) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(
            "a scenario must be a mapping with config and timeline", file=where, line=1
        )
    positions = Positions(where)
    todo: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(node, ())]
    while todo:
        current, path = todo.pop()
        positions.values[path] = (current.start_mark.line + 1, current.start_mark.column + 1)
        if isinstance(current, yaml.MappingNode):
            for knode, vnode in current.value:
                sub = (*path, str(knode.value))
                positions.keys[sub] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                todo.append((vnode, sub))
        elif isinstance(current, yaml.SequenceNode):
            todo.extend((item, (*path, i)) for i, item in enumerate(current.value))
    return data, positions


def _inline_config(
    text: str, where: str, positions: Positions, env: Mapping[str, str], base: Path
) -> SoulwatchConfig:
    """Validate the inline ``config`` mapping with positions in the scenario file."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(node, yaml.MappingNode)
    value = next(v for k, v in node.value if getattr(k, "value", None) == "config")
    line0, col0 = value.start_mark.line, value.start_mark.column
    lines = text[value.start_mark.index : value.end_mark.index].split("\n")
    # Cut the mapping out of the scenario and dedent it, so that it is a
    # soulwatch.yaml of its own; errors are then moved back to where they are.
    body = [lines[0]] + [ln[min(col0, len(ln) - len(ln.lstrip(" "))) :] for ln in lines[1:]]
    try:
        config = parse_config("\n".join(body), where, env, base_dir=base)
    except ConfigError as exc:
        if exc.file != where or exc.line is None:
            raise
        column = None if exc.column is None else exc.column + col0
        raise ConfigError(exc.reason, file=where, line=exc.line + line0, column=column) from None
    patterns: list[str] = []
    for i, pattern in enumerate(config.rule_files):
        full = str(config.resolve(base / pattern))
        if not glob.glob(full):
            raise positions.error(
                ("config", "rule_files", i), f"rule file pattern matches no file: {full}"
            )
        patterns.append(full)
    return config.model_copy(update={"rule_files": patterns})


def _check_expected(
    expected: ExpectedNotification,
    at: float,
    receivers: dict[str, bool],
    positions: Positions,
    path: tuple[str | int, ...],
) -> None:
    """Refuse an expectation that no run could ever meet."""
    if expected.receiver not in receivers:
        known = ", ".join(sorted(receivers))
        raise positions.error(
            (*path, "receiver"), f"no receiver named {expected.receiver!r} (known: {known})"
        )
    if not receivers[expected.receiver]:
        raise positions.error(
            (*path, "receiver"),
            f"receiver {expected.receiver!r} has no integrations: nothing is ever sent to it",
        )
    if expected.between is not None and expected.between[0] > at:
        raise positions.error(
            (*path, "between"),
            f"the window starts after this step ({format_duration(at)}): check it in a later step",
        )


def _check(
    file: Path, raw: ScenarioFile, config: SoulwatchConfig, positions: Positions
) -> Scenario:
    where = str(file)
    start = raw.start if raw.start.tzinfo else raw.start.replace(tzinfo=UTC)
    default_interval = raw.interval or config.global_.scrape_interval
    checks = {c.name for c in config.heartbeats.checks}
    routing = config.routing
    if routing is None:
        raise positions.error(
            ("config",), "the configuration has no alerting section: no notification can go out"
        )
    receivers = {r.name: bool(r.integrations()) for r in routing.receivers}
    silences: set[str] = set()
    last_sample: dict[Labels, float] = {}
    series: dict[int, list[SeriesInput]] = {}
    intervals: dict[int, float] = {}
    matchers: dict[int, list[Matcher]] = {}
    previous = 0.0
    for i, step in enumerate(raw.timeline):
        here = ("timeline", i)
        if step.at < previous:
            raise positions.error(
                (*here, "at"),
                f"steps must be in time order: {format_duration(step.at)} comes after"
                f" {format_duration(previous)}",
            )
        previous = step.at
        if step.samples is not None:
            interval = step.interval or default_interval
            intervals[i] = interval
            series[i] = []
            for name, values in step.samples.items():
                try:
                    labels = parse_metric(name)
                    expanded = parse_values(values)
                except NotationError as exc:
                    raise positions.error((*here, "samples", name), str(exc)) from None
                first = next((k for k, v in enumerate(expanded) if v is not None), None)
                earlier = last_sample.get(labels)
                if (
                    first is not None
                    and earlier is not None
                    and step.at + first * interval <= earlier
                ):
                    raise positions.error(
                        (*here, "samples", name),
                        f"{name} overlaps its samples of an earlier step (they end at"
                        f" {format_duration(earlier)})",
                        key=True,
                    )
                last = max((k for k, v in enumerate(expanded) if v is not None), default=None)
                if last is not None:
                    last_sample[labels] = step.at + last * interval
                series[i].append(SeriesInput(labels, expanded))
        for p, ping in enumerate(step.pings):
            if ping.check not in checks:
                path = (*here, "ping", p) if isinstance(step.ping, list) else (*here, "ping")
                known = ", ".join(sorted(checks)) or "none"
                raise positions.error(
                    path, f"no heartbeat check named {ping.check!r} in the config (known: {known})"
                )
        if step.silence is not None:
            found: list[Matcher] = []
            for m, text in enumerate(step.silence.matchers):
                try:
                    found.extend(parse_matchers(text))
                except MatcherSyntaxError as exc:
                    raise positions.error((*here, "silence", "matchers", m), str(exc)) from None
            if all(m.matches("") for m in found):
                raise positions.error(
                    (*here, "silence", "matchers"),
                    "at least one matcher must not match the empty string",
                )
            matchers[i] = found
            if step.silence.id is not None:
                if step.silence.id in silences:
                    raise positions.error(
                        (*here, "silence", "id"), f"silence id {step.silence.id!r} is used twice"
                    )
                silences.add(step.silence.id)
        for e, expected in enumerate(step.expect or []):
            _check_expected(expected, step.at, receivers, positions, (*here, "expect", e))
        if step.expire_silence is not None and step.expire_silence not in silences:
            raise positions.error(
                (*here, "expire_silence"),
                f"no earlier silence with id {step.expire_silence!r}",
            )
    if not any(step.checks for step in raw.timeline):
        raise ConfigError(
            "a scenario needs at least one expect or expect_none step", file=where, line=1
        )
    return Scenario(
        file=file,
        name=raw.name or file.stem,
        description=raw.description,
        config=config,
        start=start.timestamp(),
        steps=list(raw.timeline),
        lines=[positions.at(("timeline", i))[0] or 0 for i in range(len(raw.timeline))],
        series=series,
        intervals=intervals,
        silence_matchers=matchers,
    )
