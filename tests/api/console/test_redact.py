"""The status page's configuration: what a screenshot of it may show."""

from __future__ import annotations

import textwrap
from pathlib import Path

from soulwatch.api.console.redact import redacted_config
from soulwatch.config import load_config

SECRETS = [
    "xoxb-T000/B000/slack-path-secret",
    "pd-routing-key-0123456789",
    "smtp-password-0123456789",
    "hmac-secret-0123456789",
    "bearer-0123456789abcdef",
    "api-token-0123456789abcdef",
    "redis-password-0123",
]


def test_every_secret_is_replaced_and_hosts_stay(tmp_path: Path) -> None:
    path = tmp_path / "soulwatch.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            external_url: https://soulwatch.example
            auth:
              tokens: [{{name: ops, token: {SECRETS[5]}, scopes: [admin]}}]
            collectors:
              soulcaster: {{redis_url: "rediss://default:{SECRETS[6]}@redis.example:6379"}}
            alerting:
              global: {{smtp_smarthost: "mail.example:587", smtp_from: a@example.com,
                        smtp_auth_username: sw, smtp_auth_password: {SECRETS[2]}}}
              route: {{receiver: all}}
              receivers:
                - name: all
                  slack_configs: [{{api_url: "https://hooks.slack.example/services/{SECRETS[0]}"}}]
                  pagerduty_configs: [{{routing_key: {SECRETS[1]}}}]
                  webhook_configs:
                    - url: https://hook.example/x?sig=1
                      hmac_secret: {SECRETS[3]}
                      http_config: {{bearer_token: {SECRETS[4]}}}
            """
        )
    )
    text = redacted_config(load_config(path))
    for secret in SECRETS:
        assert secret not in text
    assert "https://hooks.slack.example/<secret>" in text
    assert "rediss://redis.example:6379" in text
    assert "https://soulwatch.example" in text  # the console's own address is no secret
    assert "smtp_auth_username: sw" in text
