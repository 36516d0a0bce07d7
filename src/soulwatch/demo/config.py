"""The soulwatch configuration the demo runs: the Soulcaster preset pointed at the demo platform.

The rule pack is the preset's, unchanged. Routing follows the preset's
on-call defaults (P1 to the page and chat receivers at once, P2 to chat and
as a ticket) with every receiver a webhook to the demo's local receiver.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import yaml

from soulwatch.api.console.boards import preset_board_path
from soulwatch.demo.browsers import RUM_KEY, RUM_ROUTES

HEARTBEAT_UUID = "5f1d0b7e-6c41-4c2e-9d0a-2d5b8a1c9e01"
ADMIN_TOKEN = "demo-admin-token-0123456789abcdef"


def preset_rules_dir() -> Path:
    """The directory of the Soulcaster rule pack."""
    return Path(str(files("soulwatch.presets").joinpath("soulcaster", "rules")))


def demo_config(
    *,
    listen: str,
    data_dir: Path,
    backend_url: str,
    redis_url: str,
    receiver_url: str,
    quota_hours: float,
) -> dict[str, object]:
    """The demo's soulwatch.yaml as a dict."""
    backend_host = backend_url.removeprefix("http://")

    def hook(path: str) -> dict[str, object]:
        return {"webhook_configs": [{"url": f"{receiver_url}/{path}", "send_resolved": True}]}

    return {
        "listen": listen,
        "data_dir": str(data_dir),
        "global": {
            "scrape_interval": "15s",
            "scrape_timeout": "10s",
            "evaluation_interval": "15s",
            "external_labels": {"monitor": "soulwatch-demo"},
        },
        "rule_files": [str(preset_rules_dir() / "*.yml")],
        # Demo time runs fast: the console refreshes every second to keep up.
        "console": {"boards": [str(preset_board_path())], "refresh": "1s"},
        "scrape_configs": [
            {"job_name": "backend", "static_configs": [{"targets": [backend_host]}]},
        ],
        "probes": [
            {
                "job_name": "backend-health",
                "prober": "http",
                "targets": [f"{backend_url}/health"],
                "interval": "15s",
                "timeout": "10s",
                "http": {"valid_status_codes": [200]},
            },
            {
                "job_name": "redis",
                "prober": "redis",
                "targets": [redis_url],
                "interval": "15s",
                "timeout": "5s",
            },
        ],
        "collectors": {
            "soulcaster": {"redis_url": redis_url, "interval_seconds": 15},
            "e2b": {
                "api_url": receiver_url,
                "api_key": "demo-e2b-key",
                "sandbox_limit": 20,
                "monthly_hours_quota": quota_hours,
                "interval_seconds": 30,
            },
        },
        "heartbeats": {
            "checks": [
                {
                    "name": "reddit-poller",
                    "uuid": HEARTBEAT_UUID,
                    "period": "10m",
                    "grace": "5m",
                    "description": "The Reddit poller's loop",
                }
            ]
        },
        "alerting": {
            "route": {
                "receiver": "chat",
                "group_by": ["alertname", "job"],
                "group_wait": "30s",
                "group_interval": "2m",
                "repeat_interval": "4h",
                "routes": [
                    {"matchers": ['alertname="Watchdog"'], "receiver": "watchdog"},
                    {
                        "matchers": ['priority="P1"'],
                        "receiver": "page",
                        "group_wait": "0s",
                        "continue": True,
                    },
                    {"matchers": ['priority="P1"'], "receiver": "chat", "group_wait": "0s"},
                    {"matchers": ['priority="P2"'], "receiver": "chat", "continue": True},
                    {"matchers": ['priority="P2"'], "receiver": "ticket"},
                ],
            },
            "receivers": [
                {"name": "page", **hook("page")},
                {"name": "chat", **hook("chat")},
                {"name": "ticket", **hook("ticket")},
                {"name": "watchdog", **hook("watchdog")},
            ],
        },
        "rum": {
            "interval": "15s",
            "sites": [
                {
                    "name": "dashboard",
                    "key": RUM_KEY,
                    "origins": [backend_url],
                    "routes": RUM_ROUTES,
                }
            ],
        },
        "auth": {
            "reads": "open",
            "tokens": [{"name": "demo", "token": ADMIN_TOKEN, "scopes": ["admin"]}],
        },
    }


def write_config(path: Path, config: dict[str, object]) -> Path:
    """Write ``config`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
