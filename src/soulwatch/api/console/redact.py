"""The running configuration as the status page shows it: every secret replaced.

Tokens, passwords and keys become ``<secret>``; URLs keep only their scheme
and host, since a webhook's secret is often its path (Slack) or its query.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: Keys whose values are secrets (``routing_key`` and ``api_key`` end in ``key``).
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|credentials|key|url)$", re.I)


def redacted_config(config: Any) -> str:
    """The running config as YAML, every secret and URL credential replaced by ``<secret>``."""
    dumped = config.model_dump(mode="json", by_alias=True, exclude_none=True)

    def scrub(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: scrub(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v, key) for v in value]
        if isinstance(value, str) and value and _SECRET_KEY.search(key):
            if key.lower().endswith("url"):
                # A webhook's secret is often its path: keep only scheme and host.
                host = re.match(r"^([a-z][a-z0-9+.-]*://)(?:[^/@]*@)?([^/?#]*)", value, re.I)
                if key.lower() == "external_url":
                    return value
                if host is None:
                    return "<secret>"
                rest = value[host.end() :]
                return host.group(1) + host.group(2) + ("/<secret>" if rest.strip("/") else "")
            return "<secret>"
        if isinstance(value, str) and "**" in value:
            return "<secret>"
        return value

    text: str = yaml.safe_dump(scrub(dumped), sort_keys=False, default_flow_style=False)
    routing = getattr(config, "routing", None)
    if routing is not None:
        text += "\n# alerting (resolved)\n" + yaml.safe_dump(
            scrub(routing.model_dump(mode="json", exclude_none=True)), sort_keys=False
        )
    return text
