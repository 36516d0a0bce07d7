"""The demo's live terminal view: signals, scenarios, alert states and deliveries."""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from soulwatch.demo.run import SIGNALS, DemoState, Phase

_PHASE_STYLE = {
    Phase.WAITING: "dim",
    Phase.INJECTED: "yellow",
    Phase.DELIVERED: "bold red",
    Phase.REMOVED: "cyan",
    Phase.PASSED: "green",
    Phase.FAILED: "bold white on red",
}


def render(state: DemoState) -> RenderableType:
    """One frame of the live view."""
    header = (
        f"console {state.soulwatch_url}/  ·  backend {state.backend_url}  ·  "
        f"redis: {state.redis}  ·  time runs {state.speed:g}× faster"
    )
    signals = Table(title="Signals (PromQL over soulwatch's API)", expand=True)
    signals.add_column("signal")
    signals.add_column("value", justify="right")
    for label, _, kind in SIGNALS:
        signals.add_row(label, format_value(state.signals.get(label, "?"), kind))

    scenarios = Table(title="Fault scenarios", expand=True)
    scenarios.add_column("scenario")
    scenarios.add_column("expects")
    scenarios.add_column("state")
    scenarios.add_column("paged after", justify="right")
    scenarios.add_column("resolved after", justify="right")
    for o in state.outcomes:
        style = _PHASE_STYLE[o.phase]
        marker = "▶ " if o is state.current and not o.ok else ""
        scenarios.add_row(
            marker + o.scenario.name,
            ", ".join(o.scenario.expect),
            f"[{style}]{o.phase.value}[/]",
            format_value(str(o.delivered_after), "age") if o.delivered_after is not None else "",
            format_value(str(o.resolved_after), "age") if o.resolved_after is not None else "",
        )

    alerts = Table(title="Active alerts", expand=True)
    alerts.add_column("alert")
    alerts.add_column("state")
    alerts.add_column("priority")
    for name, alert_state, priority in state.alerts:
        style = "bold red" if alert_state == "firing" else "yellow"
        alerts.add_row(name, f"[{style}]{alert_state}[/]", priority)

    deliveries = Table(title="Received by the local receivers (page / chat / ticket)", expand=True)
    deliveries.add_column("receiver")
    deliveries.add_column("status")
    deliveries.add_column("alert")
    deliveries.add_column("summary")
    for d in [d for d in state.deliveries if d.alertname != "Watchdog"][-8:]:
        style = "red" if d.status == "firing" else "green"
        deliveries.add_row(d.receiver, f"[{style}]{d.status}[/]", d.alertname, d.summary)

    log = "\n".join(state.log[-6:])
    return Group(
        Panel(header, title="soulwatch demo"),
        signals,
        scenarios,
        alerts,
        deliveries,
        Panel(log, title="log"),
    )


def format_value(raw: str, kind: str) -> str:
    """A signal's value for people: percentages, durations, up/down."""
    try:
        value = float(raw)
    except ValueError:
        return raw
    if math.isnan(value):
        return "NaN"
    if kind == "bool":
        return "[green]up[/]" if value >= 1 else "[red]DOWN[/]"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "per-min":
        return f"{value:.0f}/min"
    if kind == "age":
        minutes, secs = divmod(round(value), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
    return f"{value:g}"
