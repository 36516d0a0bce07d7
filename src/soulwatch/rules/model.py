"""The parsed form of a Prometheus rule file.

A rule file is a list of :class:`GroupSpec`, each holding :class:`RuleSpec`
items in file order. Every spec remembers where it came from
(:class:`Position`), so later errors (a template that fails, an expression
that cannot be evaluated) still name ``file:line:col``.

Durations follow Prometheus's duration syntax (``1h30m``, ``90s``, ``2d``)
and are stored as float seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS_MS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m`` or ``1h30m``; raises ``ValueError``."""
    if text == "0":
        return 0.0
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    total_ms = 0
    for (_, unit_ms), part in zip(_UNITS_MS, match.groups(), strict=True):
        if part:
            total_ms += int(part) * unit_ms
    return total_ms / 1000.0


def format_duration(seconds: float) -> str:
    """Prometheus's spelling of a duration (``1m30s``, ``2h``, ``0s``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    out = []
    for unit, unit_ms in _UNITS_MS:
        count, ms = divmod(ms, unit_ms)
        if count:
            out.append(f"{count}{unit}")
    return sign + "".join(out)


class RuleKind(Enum):
    """Whether a rule records a series or raises an alert."""

    RECORD = "record"
    ALERT = "alert"


class NoDataPolicy(Enum):
    """soulwatch extension: what an alerting rule does when its expression returns nothing.

    ``ok`` is Prometheus's behaviour (active alerts resolve). ``alerting``
    raises one alert labelled ``nodata="true"``. ``keep_last`` leaves every
    active alert exactly as it was until data comes back.
    """

    OK = "ok"
    ALERTING = "alerting"
    KEEP_LAST = "keep_last"


@dataclass(frozen=True)
class Position:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class RuleSpec:
    """One recording or alerting rule as written in a rule file."""

    kind: RuleKind
    name: str
    expr: str
    position: Position
    expr_position: Position
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    recover_expr: str | None = None
    no_data: NoDataPolicy = NoDataPolicy.OK

    @property
    def is_alert(self) -> bool:
        """True for an alerting rule."""
        return self.kind is RuleKind.ALERT

    @property
    def uses_extensions(self) -> bool:
        """True if the rule uses keys only soulwatch understands."""
        return self.recover_expr is not None or self.no_data is not NoDataPolicy.OK


@dataclass(frozen=True)
class GroupSpec:
    """A rule group: rules evaluated in order, together, every ``interval``."""

    name: str
    file: str
    position: Position
    rules: tuple[RuleSpec, ...]
    interval_s: float | None = None
    limit: int = 0
    query_offset_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity for the group: ``file;name`` (as Prometheus keys groups)."""
        return f"{self.file};{self.name}"

    def equals(self, other: GroupSpec) -> bool:
        """Whether ``other`` defines the same group, wherever in its file it is written.

        A reload keeps a group that equals its old self running, with its
        state and its schedule (Prometheus compares groups the same way).
        """
        return _placeless(self) == _placeless(other)


_NOWHERE = Position("", 0, 0)


def _placeless(spec: GroupSpec) -> GroupSpec:
    rules = tuple(replace(r, position=_NOWHERE, expr_position=_NOWHERE) for r in spec.rules)
    return replace(spec, position=_NOWHERE, rules=rules)
