"""The expanding series notation of promtool test files and PromQL ``load`` blocks.

``'1+2x3 _ stale 5x2 _x2'`` means: 1 3 5 7, one missing sample, a staleness
marker, 5 5 5, two missing samples. ``a+bxn`` gives ``n+1`` values computed
by repeated addition (as Prometheus does, so float rounding agrees); ``_xn``
gives ``n`` missing samples. Series names use the metric-selector syntax
``name{label="value"}``.
"""

from __future__ import annotations

import math
import re

from soulwatch.tsdb.model import METRIC_NAME, STALE_NAN, Labels

#: One value of a series: a float, ``None`` for a missing sample.
SeriesValue = float | None

_NUMBER = r"[-+]?(?:Inf|inf|NaN|nan|0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_EXPANDING = re.compile(rf"^({_NUMBER})(?:([-+])({_NUMBER}))?x(\d+)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*")


class NotationError(ValueError):
    """A series description or metric name that does not parse."""


def _number(text: str) -> float:
    lowered = text.lower().lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if lowered == "inf":
        return sign * math.inf
    if lowered == "nan":
        return math.nan
    if lowered.startswith("0x"):
        return sign * int(lowered, 16)
    return float(text)


def parse_values(text: str) -> list[SeriesValue]:
    """Expand a series description into one value per step (``None`` = missing)."""
    out: list[SeriesValue] = []
    for token in str(text).split():
        if token == "_":
            out.append(None)
        elif token == "stale":
            out.append(STALE_NAN)
        elif token.startswith("_x") and token[2:].isdigit():
            out.extend([None] * int(token[2:]))
        elif (match := _EXPANDING.match(token)) is not None:
            start, sign, step, times = match.groups()
            value = _number(start)
            increment = _number(step) if step else 0.0
            if sign == "-":
                increment = -increment
            for _ in range(int(times) + 1):
                out.append(value)
                value += increment
        else:
            try:
                out.append(_number(token))
            except ValueError as exc:
                raise NotationError(f"bad number or series notation {token!r}") from exc
    return out


def parse_metric(text: str) -> Labels:
    """``name{a="b", c="d"}`` (name optional) as :class:`Labels`."""
    source = str(text)
    match = _NAME.match(source)
    assert match is not None  # the pattern matches the empty string
    name = match.group(1)
    pos = match.end()
    pairs: list[tuple[str, str]] = [(METRIC_NAME, name)] if name else []
    if pos < len(source) and source[pos] == "{":
        pos += 1
        while True:
            while pos < len(source) and source[pos].isspace():
                pos += 1
            if pos < len(source) and source[pos] == "}":
                pos += 1
                break
            label = _LABEL.match(source, pos)
            if label is None:
                raise NotationError(f"cannot parse labels of {source!r} at {pos + 1}")
            value = label.group(2).encode().decode("unicode_escape")
            pairs.append((label.group(1), value))
            pos = label.end()
    if source[pos:].strip():
        raise NotationError(f"unexpected {source[pos:].strip()!r} in {source!r}")
    if not pairs and not source.strip().startswith("{"):
        raise NotationError(f"no metric name or labels in {source!r}")
    return Labels(pairs)
