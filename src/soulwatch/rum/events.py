"""The beacon's schema: what the agent sends, checked field by field.

A batch is ``{"site": KEY, "session": ID, "events": [...]}``; each event is
one of::

    {"type": "pageview", "page": "/clusters/42"}
    {"type": "vital", "name": "LCP", "value": 1834.2, "page": "/"}   # ms; CLS unitless
    {"type": "error", "kind": "react", "page": "/"}
    {"type": "api", "route": "/api/clusters", "status": 500, "duration": 84.1, "page": "/"}

A batch with one bad event is refused whole, with the event's index and field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

VitalName = Literal["LCP", "INP", "CLS", "FCP", "TTFB"]
ErrorKind = Literal["error", "unhandledrejection", "react"]
VITALS: tuple[VitalName, ...] = ("LCP", "INP", "CLS", "FCP", "TTFB")
ERROR_KINDS: tuple[ErrorKind, ...] = ("error", "unhandledrejection", "react")

_SESSION = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_MAX_PATH = 2048
_MAX_MS = 3_600_000.0  # an hour: anything longer is not a page load


class BeaconError(ValueError):
    """The batch does not follow the schema; the message names the field."""


@dataclass(frozen=True, slots=True)
class PageView:
    """A page was shown (a load, or a client-side navigation)."""

    page: str


@dataclass(frozen=True, slots=True)
class Vital:
    """One web-vitals value: seconds for timings, unitless for CLS."""

    page: str
    name: VitalName
    value: float


@dataclass(frozen=True, slots=True)
class PageError:
    """An uncaught error, an unhandled rejection, or a React crash."""

    page: str
    kind: ErrorKind


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A ``fetch`` of the page to its own ``/api/*``: status (0: network error) and seconds."""

    page: str
    route: str
    status: int
    duration: float


Event = PageView | Vital | PageError | ApiCall


@dataclass(frozen=True, slots=True)
class Batch:
    """A checked batch."""

    key: str
    session: str
    events: list[Event]


def parse_batch(body: bytes, max_events: int) -> Batch:
    """The batch in ``body``; :class:`BeaconError` naming what is wrong and where."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BeaconError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BeaconError("body must be a JSON object")
    key = data.get("site")
    if not isinstance(key, str) or not key:
        raise BeaconError("site: must be the site's key (a string)")
    session = data.get("session")
    if not isinstance(session, str) or not _SESSION.match(session):
        raise BeaconError("session: must be 8 to 64 letters, digits, '-' or '_'")
    raw = data.get("events")
    if not isinstance(raw, list):
        raise BeaconError("events: must be a list")
    if len(raw) > max_events:
        raise BeaconError(f"events: at most {max_events} events per batch, got {len(raw)}")
    return Batch(key, session, [_event(i, item) for i, item in enumerate(raw)])


def _event(i: int, item: Any) -> Event:
    where = f"events[{i}]"
    if not isinstance(item, dict):
        raise BeaconError(f"{where}: must be an object")
    page = _path(item.get("page"), f"{where}.page")
    kind = item.get("type")
    if kind == "pageview":
        return PageView(page)
    if kind == "vital":
        name = item.get("name")
        if name not in VITALS:
            raise BeaconError(f"{where}.name: must be one of {', '.join(VITALS)}")
        value = _number(item.get("value"), f"{where}.value", 100.0 if name == "CLS" else _MAX_MS)
        return Vital(page, name, value if name == "CLS" else value / 1000.0)
    if kind == "error":
        error_kind = item.get("kind")
        if error_kind not in ERROR_KINDS:
            raise BeaconError(f"{where}.kind: must be one of {', '.join(ERROR_KINDS)}")
        return PageError(page, error_kind)
    if kind == "api":
        status = item.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 599:
            raise BeaconError(f"{where}.status: must be an HTTP status from 0 to 599")
        route = _path(item.get("route"), f"{where}.route")
        duration = _number(item.get("duration"), f"{where}.duration", _MAX_MS)
        return ApiCall(page, route, status, duration / 1000.0)
    raise BeaconError(f"{where}.type: must be pageview, vital, error or api")


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > _MAX_PATH:
        raise BeaconError(f"{where}: must be a path starting with '/' (at most {_MAX_PATH} chars)")
    return value.split("?", 1)[0].split("#", 1)[0]


def _number(value: Any, where: str, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BeaconError(f"{where}: must be a number")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= limit:
        raise BeaconError(f"{where}: must be a finite number from 0 to {limit:g}")
    return number
