"""Write a routing configuration back out as an ``alertmanager.yml``.

The result passes ``amtool check-config`` (Alertmanager 0.25 and later), so a
team that outgrows one machine hands its routing to an Alertmanager cluster
unchanged. soulwatch-only parts cannot be expressed there and are left out,
each with a warning: ``github_configs``, ``alertmanager_configs``,
``msteams_configs`` (Alertmanager 0.26+), a webhook's ``hmac_secret``, and the
``actions``, ``delivery`` and ``external_url`` sections. ``send_resolved`` is
always written, because soulwatch's default (true) differs from
Alertmanager's for Slack and email.

Secrets are never written into the export: each one (a Slack or Discord
webhook URL, a PagerDuty routing key, an SMTP password, a bearer token or
basic-auth password, a webhook URL carrying credentials or a query string)
becomes the matching ``*_file`` key, pointing at ``<secrets_dir>/<name>``,
and a warning names the file to create. ``*_file`` keys already in the
routing are kept as they are.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from soulwatch.alerting.config import AlertingConfig, Route

_DURATIONS = ("group_wait", "group_interval", "repeat_interval")
#: Per integration: the keys holding a secret (each has a ``*_file`` twin in Alertmanager).
_SECRET_KEYS = {
    "slack_configs": ("api_url",),
    "pagerduty_configs": ("routing_key",),
    "email_configs": ("auth_password",),
    "discord_configs": ("webhook_url",),  # no *_file before Alertmanager 0.27: a placeholder
    "webhook_configs": ("url",),
}
_DROPPED_INTEGRATIONS = (
    "github_configs",
    "alertmanager_configs",
    "msteams_configs",
    "soulcaster_configs",
)


def export_alertmanager(
    config: AlertingConfig, *, secrets_dir: str = "secrets"
) -> tuple[str, list[str]]:
    """``(alertmanager.yml text, warnings about what was left out or must be provided)``.

    Secrets become ``*_file`` references under ``secrets_dir`` (relative paths
    are relative to the written file, as Alertmanager resolves them).
    """
    warnings: list[str] = []
    out: dict[str, Any] = {}
    glob = config.global_.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
    secrets = _Secrets(secrets_dir, warnings)
    for key in ("slack_api_url", "smtp_auth_password"):
        secrets.move(glob, key, "global")
    if glob:
        out["global"] = glob
    out["route"] = _route(config.route)
    out["receivers"] = [
        _receiver(r.model_dump(by_alias=True, exclude_none=True), warnings, secrets)
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
    # Durations serialize as Alertmanager writes them (``30s``, ``4h``).
    data = route.model_dump(by_alias=True, exclude_defaults=True, exclude={"routes"})
    if route.routes:
        data["routes"] = [_route(child) for child in route.routes]
    return data


_PLACEHOLDER = "REPLACE_WITH_THE_SECRET_URL"


class _Secrets:
    """Replaces inline secrets by ``*_file`` references and says which files to create."""

    def __init__(self, directory: str, warnings: list[str]) -> None:
        self.directory = directory.rstrip("/") or "."
        self.warnings = warnings

    def move(
        self, data: dict[str, Any], key: str, where: str, *, placeholder: bool = False
    ) -> None:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            return
        if key == "url" and not _url_has_secret(value):
            return  # a plain endpoint URL is not a secret
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{where}_{key}")
        if placeholder:
            parts = urlsplit(value)
            data[key] = f"{parts.scheme}://{parts.hostname}/{_PLACEHOLDER}"
            self.warnings.append(f"{where}: {key} written as a placeholder (replace it)")
            return
        path = f"{self.directory}/{name}"
        del data[key]
        data[f"{key}_file"] = path
        self.warnings.append(f"{where}: {key} written as {key}_file: {path} (put the value there)")

    def http_config(self, config: dict[str, Any], where: str) -> None:
        http = config.get("http_config")
        if not isinstance(http, dict):
            return
        self.move(http, "bearer_token", where)
        basic = http.get("basic_auth")
        if isinstance(basic, dict):
            self.move(basic, "password", f"{where}_basic_auth")


def _url_has_secret(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.username or parts.password or parts.query)


def _receiver(data: dict[str, Any], warnings: list[str], secrets: _Secrets) -> dict[str, Any]:
    name = data["name"]
    out: dict[str, Any] = {"name": name}
    for key, configs in data.items():
        if key == "name" or not configs:
            continue
        if key in _DROPPED_INTEGRATIONS:
            warnings.append(f"receiver {name!r}: {key} is soulwatch-only, not exported")
            continue
        cleaned: list[dict[str, Any]] = []
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
            where = f"{name}_{key.removesuffix('_configs')}_{len(cleaned)}"
            for secret in _SECRET_KEYS.get(key, ()):
                secrets.move(c, secret, where, placeholder=key == "discord_configs")
            secrets.http_config(c, where)
            cleaned.append(c)
        out[key] = cleaned
    return out
