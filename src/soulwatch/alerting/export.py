"""Write a routing configuration back out as an ``alertmanager.yml``.

The result passes ``amtool check-config`` (Alertmanager 0.25 and later), so a
team that outgrows one machine hands its routing to an Alertmanager cluster
unchanged. soulwatch-only parts cannot be expressed there and are left out,
each with a warning: ``github_configs``, ``alertmanager_configs``,
``msteams_configs`` (Alertmanager 0.26+), a webhook's ``hmac_secret``, and the
``actions``, ``delivery`` and ``external_url`` sections. ``send_resolved`` is
always written, because soulwatch's default (true) differs from
Alertmanager's for Slack and email.
"""

from __future__ import annotations

from typing import Any

import yaml

from soulwatch.alerting.config import AlertingConfig, Route, format_duration

_DURATIONS = ("group_wait", "group_interval", "repeat_interval")
_DROPPED_INTEGRATIONS = (
    "github_configs",
    "alertmanager_configs",
    "msteams_configs",
    "soulcaster_configs",
)


def export_alertmanager(config: AlertingConfig) -> tuple[str, list[str]]:
    """``(alertmanager.yml text, warnings about what was left out)``."""
    warnings: list[str] = []
    out: dict[str, Any] = {}
    glob = config.global_.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
    if "resolve_timeout" in glob:
        glob["resolve_timeout"] = format_duration(glob["resolve_timeout"])
    if glob:
        out["global"] = glob
    out["route"] = _route(config.route)
    out["receivers"] = [
        _receiver(r.model_dump(by_alias=True, exclude_none=True), warnings)
        for r in config.receivers
    ]
    if config.inhibit_rules:
        out["inhibit_rules"] = [
            r.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
            for r in config.inhibit_rules
        ]
    intervals = [*config.time_intervals, *config.mute_time_intervals]
    if intervals:
        out["time_intervals"] = [t.model_dump(exclude_defaults=True) for t in intervals]
    if config.templates:
        out["templates"] = list(config.templates)
    for key in ("actions", "delivery", "external_url"):
        if key in config.model_fields_set:
            warnings.append(f"{key}: soulwatch-only section, not exported")
    text = yaml.safe_dump(out, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text, warnings


def _route(route: Route) -> dict[str, Any]:
    data = route.model_dump(by_alias=True, exclude_defaults=True, exclude={"routes"})
    for key in _DURATIONS:
        if data.get(key) is not None:
            data[key] = format_duration(data[key])
    if route.routes:
        data["routes"] = [_route(child) for child in route.routes]
    return data


def _receiver(data: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    name = data["name"]
    out: dict[str, Any] = {"name": name}
    for key, configs in data.items():
        if key == "name" or not configs:
            continue
        if key in _DROPPED_INTEGRATIONS:
            warnings.append(f"receiver {name!r}: {key} is soulwatch-only, not exported")
            continue
        cleaned = []
        for original in configs:
            c = dict(original)
            if c.pop("hmac_secret", None) or c.pop("hmac_secret_file", None):
                warnings.append(f"receiver {name!r}: webhook hmac_secret is not exported")
            c.pop("hmac_secret_file", None)
            if key == "pagerduty_configs":
                if c.get("client") == "soulwatch":
                    c.pop("client")
                if not c.get("details"):
                    c.pop("details", None)
            if key == "email_configs" and not c.get("headers"):
                c.pop("headers", None)
            if key == "webhook_configs" and c.get("max_alerts") == 0:
                c.pop("max_alerts")
            cleaned.append(c)
        out[key] = cleaned
    return out
