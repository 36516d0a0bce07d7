"""Prometheus durations (``90s``, ``1h30m``, ``500ms``, ``15d``): the one duration type.

Every duration in soulwatch's files (``soulwatch.yaml``, ``alertmanager.yml``,
``prometheus.yml`` sections, probe files) is read by :data:`Duration` with
Prometheus's syntax and Prometheus's error text: units ``y w d h m s ms`` in
that order, whole numbers only, ``0`` alone allowed. A number without a unit
(``interval: 15``) is refused in a file, as Prometheus refuses it: it is
ambiguous (seconds? milliseconds?). Python code building a model may still
pass float seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import PlainSerializer, ValidationInfo, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

_UNITS_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_MAX_MS = 2**63 - 1

#: Pass as ``context=`` to ``model_validate`` for data read from a file: bare
#: numbers are then refused as durations, as Prometheus refuses them.
FILE_CONTEXT: Final = {"durations": "file"}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string; ``"0"`` is zero.

    Raises ``ValueError`` with Prometheus's message (``not a valid duration
    string: "15"``, ``empty duration string``, ``duration out of range``).
    """
    if text == "":
        raise ValueError("empty duration string")
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    total = 0
    for group, unit in zip(match.groups(), _ORDER, strict=True):
        if group:
            if len(group) > 19:
                raise ValueError("duration out of range")
            total += int(group) * _UNITS_MS[unit]
    if total > _MAX_MS:
        raise ValueError("duration out of range")
    return total / 1000.0


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration string for ``seconds`` (``0s`` for zero)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit in _ORDER:
        size = _UNITS_MS[unit]
        if unit in ("y", "w") and ms % size:
            # as Prometheus writes them: years and weeks only when exact (15d, not 2w1d)
            continue
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _validate(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    # ``handler`` applies the field's own bounds (``gt=0``...) to the seconds.
    if isinstance(value, str):
        return handler(parse_duration(value))
    from_file = isinstance(info.context, dict) and info.context.get("durations") == "file"
    if isinstance(value, bool) or not isinstance(value, int | float) or from_file:
        # A YAML number is read as its text, as Prometheus's YAML decoder does.
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        raise ValueError(f'not a valid duration string: "{shown}"')
    if value < 0:
        raise ValueError("a duration cannot be negative")
    return handler(float(value))


#: A duration setting: written ``"30s"`` in files, held as float seconds.
Duration = Annotated[
    float, WrapValidator(_validate), PlainSerializer(format_duration, return_type=str)
]
