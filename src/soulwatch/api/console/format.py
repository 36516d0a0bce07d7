"""How the console writes numbers, times and small charts.

Values are formatted by a panel's unit; sparklines are inline SVG drawn on
the server, so a tile reads (and its trend shows) without any JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape


def fmt_value(value: float | None, unit: str = "short") -> str:
    """``value`` written for people, by ``unit`` (Grafana's unit ids)."""
    if value is None or math.isnan(value):
        return "no data"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "bool":
        return "up" if value >= 1 else "down"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit in ("s", "h"):
        return fmt_seconds(value * (3600 if unit == "h" else 1))
    if unit == "reqps":
        return f"{_short(value)} req/s"
    if unit == "reqpm":
        return f"{_short(value)} req/min"
    if unit == "bytes":
        return _bytes(value)
    return _short(value)


def _short(value: float) -> str:
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    size = float(value)
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or suffix == "GiB":
            return f"{size:.3g} {suffix}"
        size /= 1024
    return f"{size:.3g} TiB"  # pragma: no cover - the loop returns at GiB


def fmt_seconds(seconds: float) -> str:
    """A duration: ``850ms``, ``12.5s``, ``4m 10s``, ``3h 5m``, ``2d 4h``."""
    if math.isnan(seconds):
        return "no data"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.3g}ms"
    if s < 60:
        return f"{sign}{s:.3g}s"
    units = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
    parts: list[str] = []
    rest = round(s)
    for size, name in units:
        if rest >= size:
            parts.append(f"{rest // size}{name}")
            rest %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def fmt_time(value: float | str | None) -> str:
    """A Unix time or RFC 3339 string as ``2026-12-04 17:05:31 UTC``."""
    t = to_unix(value)
    if t is None:
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def to_unix(value: float | str | None) -> float | None:
    """Unix seconds from a number or an RFC 3339 string (``None`` for Go's zero time)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if value.startswith("0001-01-01"):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def fmt_ago(value: float | str | None, now: float) -> str:
    """How long ago: ``5m 3s ago`` (``in 2m`` for the future)."""
    t = to_unix(value)
    if t is None:
        return "never"
    delta = now - t
    if abs(delta) < 1:
        return "just now"
    return f"{fmt_seconds(delta)} ago" if delta > 0 else f"in {fmt_seconds(-delta)}"


def sparkline(
    points: Sequence[tuple[float, float]],
    *,
    start: float,
    end: float,
    threshold: float | None = None,
    width: int = 120,
    height: int = 28,
    label: str = "",
) -> Markup:
    """An inline SVG line of ``(t, value)`` points over ``[start, end]``, with a threshold line."""
    finite = [(t, v) for t, v in points if math.isfinite(v)]
    values = [v for _, v in finite]
    if threshold is not None and math.isfinite(threshold):
        values.append(threshold)
    if not finite or end <= start:
        return Markup(
            f'<svg class="spark" viewBox="0 0 {width} {height}" role="img"'
            f' aria-label="{escape(label)}: no data"></svg>'
        )
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = 2

    def x(t: float) -> float:
        return round((t - start) / (end - start) * width, 1)

    def y(v: float) -> float:
        return round(pad + (hi - v) / (hi - lo) * (height - 2 * pad), 1)

    # A gap of more than two steps breaks the line (no data is not a straight line).
    segments: list[list[str]] = [[]]
    step = (end - start) / max(len(points), 1)
    last_t: float | None = None
    for t, v in finite:
        if last_t is not None and t - last_t > 2.5 * step:
            segments.append([])
        segments[-1].append(f"{x(t)},{y(v)}")
        last_t = t
    lines = "".join(
        f'<polyline points="{" ".join(seg)}"/>' if len(seg) > 1 else _dot(seg[0])
        for seg in segments
        if seg
    )
    rule = ""
    if threshold is not None and math.isfinite(threshold):
        ty = y(threshold)
        rule = f'<line class="threshold" x1="0" x2="{width}" y1="{ty}" y2="{ty}"/>'
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none"'
        f' role="img" aria-label="{escape(label)}">{rule}{lines}</svg>'
    )


def _dot(point: str) -> str:
    px, py = point.split(",")
    return f'<circle cx="{px}" cy="{py}" r="1.5"/>'
