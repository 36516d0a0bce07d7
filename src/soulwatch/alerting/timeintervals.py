"""Alertmanager time intervals: weekday, day-of-month, month, year and time-of-day ranges.

A named interval is a list of specs; the interval contains an instant when any
spec does, and a spec contains it when every field it sets does (in the spec's
``location`` time zone). Time ranges include the start minute and exclude the end.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from soulwatch.alerting.config import TimeIntervalSpec
from soulwatch.exceptions import ConfigError

_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}  # monday = 0
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}


def _ranges(items: Iterable[str], names: Mapping[str, int] | None) -> list[tuple[int, int]]:
    out = []
    for item in items:
        lo, _, hi = item.partition(":")
        out.append((_value(lo, names), _value(hi or lo, names)))
    return out


def _value(text: str, names: Mapping[str, int] | None) -> int:
    text = text.strip().lower()
    if names is not None and text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"invalid time interval value {text!r}") from None


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def spec_contains(spec: TimeIntervalSpec, t: float) -> bool:
    """Whether Unix time ``t`` is inside ``spec``."""
    try:
        tz = ZoneInfo(spec.location) if spec.location not in ("UTC", "") else UTC
    except ZoneInfoNotFoundError:
        raise ConfigError(f"unknown time zone {spec.location!r}") from None
    now = datetime.fromtimestamp(t, tz)
    if spec.times:
        minute = now.hour * 60 + now.minute
        if not any(_minutes(r.start_time) <= minute < _minutes(r.end_time) for r in spec.times):
            return False
    if spec.weekdays:
        wd = now.weekday()
        if not any(lo <= wd <= hi for lo, hi in _ranges(spec.weekdays, _WEEKDAYS)):
            return False
    if spec.days_of_month:
        days_in_month = calendar.monthrange(now.year, now.month)[1]
        ok = False
        for lo, hi in _ranges(spec.days_of_month, None):
            # Negative days count from the end of the month (-1 is the last day).
            lo_d = lo if lo > 0 else days_in_month + lo + 1
            hi_d = hi if hi > 0 else days_in_month + hi + 1
            ok = ok or lo_d <= now.day <= hi_d
        if not ok:
            return False
    if spec.months and not any(lo <= now.month <= hi for lo, hi in _ranges(spec.months, _MONTHS)):
        return False
    return not spec.years or any(lo <= now.year <= hi for lo, hi in _ranges(spec.years, None))


def interval_contains(specs: Iterable[TimeIntervalSpec], t: float) -> bool:
    """Whether ``t`` is inside any of the specs of a named interval."""
    return any(spec_contains(s, t) for s in specs)


def check_specs(specs: Iterable[TimeIntervalSpec]) -> None:
    """Evaluate every spec once so that a bad value fails at load time, not at night."""
    for spec in specs:
        spec_contains(spec, 0.0)


def next_change(
    specs: Iterable[TimeIntervalSpec], t: float, *, horizon: float = 8 * 86400
) -> float | None:
    """The first whole minute after ``t`` at which containment changes, within ``horizon``."""
    spec_list = list(specs)
    inside = interval_contains(spec_list, t)
    step = 60.0
    probe = (t // step + 1) * step
    end = t + horizon
    while probe <= end:
        if interval_contains(spec_list, probe) != inside:
            return probe
        probe += step
    return None
