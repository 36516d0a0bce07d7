"""Prometheus durations (``90s``, ``1h30m``, ``500ms``, ``2w``) for config models."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string; ``"0"`` is zero.

    Raises ``ValueError`` naming the accepted form for anything else.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a valid duration: {text!r} (use e.g. 30s, 5m, 1h30m, 500ms)")
    return sum(int(g) * _UNITS[u] for g, u in zip(match.groups(), _ORDER, strict=True) if g)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration string for ``seconds``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit in _ORDER:
        size = round(_UNITS[unit] * 1000)
        if unit in ("y", "w") and ms % size:
            # as Prometheus writes them: years and weeks only when exact (15d, not 2w1d)
            continue
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration must be a string such as 30s or 5m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("a duration must be a string such as 30s or 5m")


#: A duration setting: written as ``"30s"`` (or a number of seconds), held as float seconds.
Duration = Annotated[
    float, BeforeValidator(_coerce), PlainSerializer(format_duration, return_type=str)
]
