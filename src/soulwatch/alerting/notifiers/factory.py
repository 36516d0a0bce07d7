"""Build the notifiers of every integration in a configuration."""

from __future__ import annotations

import base64

import httpx

from soulwatch.alerting.config import (
    AlertingConfig,
    AlertmanagerForwardConfig,
    DiscordConfig,
    EmailConfig,
    GitHubConfig,
    HTTPConfig,
    MSTeamsConfig,
    PagerDutyConfig,
    SlackConfig,
    SoulcasterConfig,
    WebhookConfig,
    read_secret,
)
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.notifiers.alertmanager import AlertmanagerNotifier
from soulwatch.alerting.notifiers.chat import ChatWebhookNotifier
from soulwatch.alerting.notifiers.email import EmailNotifier
from soulwatch.alerting.notifiers.github import GitHubNotifier, IssueIndex
from soulwatch.alerting.notifiers.pagerduty import PagerDutyNotifier
from soulwatch.alerting.notifiers.slack import SlackNotifier
from soulwatch.alerting.notifiers.soulcaster import EvidenceSource, SoulcasterNotifier
from soulwatch.alerting.notifiers.webhook import WebhookNotifier
from soulwatch.clock import Clock
from soulwatch.exceptions import ConfigError


def integration_id(receiver: str, kind: str, index: int) -> str:
    """The id of one integration: ``receiver/kind/index``."""
    return f"{receiver}/{kind}/{index}"


def _auth_headers(http: HTTPConfig | None, config: AlertingConfig) -> dict[str, str]:
    if http is None:
        return {}
    token = read_secret(
        http.bearer_token, http.bearer_token_file, base_dir=config.base_dir, what="bearer token"
    )
    if token:
        return {"Authorization": f"Bearer {token}"}
    if http.basic_auth is not None:
        ba = http.basic_auth
        password = (
            read_secret(ba.password, ba.password_file, base_dir=config.base_dir, what="password")
            or ""
        )
        raw = base64.b64encode(f"{ba.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}
    return {}


def build_notifiers(
    config: AlertingConfig,
    *,
    client: httpx.AsyncClient,
    clock: Clock,
    issue_index: IssueIndex,
    evidence: EvidenceSource | None = None,
) -> dict[str, Notifier]:
    """A notifier for every integration of every receiver, keyed by integration id.

    ``evidence`` feeds the Soulcaster feedback bodies (the monitor's data).
    """
    out: dict[str, Notifier] = {}
    g = config.global_
    base = config.base_dir
    for receiver in config.receivers:
        for kind, index, c in receiver.integrations():
            key = integration_id(receiver.name, kind, index)
            where = f"receiver {receiver.name!r} {kind}_configs[{index}]"
            notifier: Notifier
            if isinstance(c, WebhookConfig):
                url = read_secret(c.url, c.url_file, base_dir=base, what=f"{where} url")
                secret = read_secret(
                    c.hmac_secret, c.hmac_secret_file, base_dir=base, what=f"{where} hmac_secret"
                )
                notifier = WebhookNotifier(
                    _need(url, where, "url"),
                    client=client,
                    clock=clock,
                    max_alerts=c.max_alerts,
                    hmac_secret=secret,
                    headers=_auth_headers(c.http_config, config),
                )
            elif isinstance(c, SlackConfig):
                url = read_secret(
                    c.api_url, c.api_url_file, base_dir=base, what=f"{where} api_url"
                ) or read_secret(
                    g.slack_api_url,
                    g.slack_api_url_file,
                    base_dir=base,
                    what="global slack_api_url",
                )
                notifier = SlackNotifier(
                    _need(url, where, "api_url"),
                    client=client,
                    clock=clock,
                    channel=c.channel,
                    username=c.username,
                )
            elif isinstance(c, PagerDutyConfig):
                key_ = read_secret(
                    c.routing_key, c.routing_key_file, base_dir=base, what=f"{where} routing_key"
                )
                notifier = PagerDutyNotifier(
                    _need(key_, where, "routing_key"),
                    client=client,
                    clock=clock,
                    url=c.url or g.pagerduty_url,
                    client_name=c.client,
                    client_url=c.client_url,
                    severity=c.severity,
                    details=c.details,
                )
            elif isinstance(c, EmailConfig):
                password = read_secret(
                    c.auth_password or g.smtp_auth_password,
                    c.auth_password_file or g.smtp_auth_password_file,
                    base_dir=base,
                    what=f"{where} auth_password",
                )
                notifier = EmailNotifier(
                    smarthost=_need(c.smarthost or g.smtp_smarthost, where, "smarthost"),
                    sender=_need(c.from_ or g.smtp_from, where, "from"),
                    to=c.to,
                    hello=c.hello or g.smtp_hello,
                    username=c.auth_username or g.smtp_auth_username,
                    password=password,
                    require_tls=g.smtp_require_tls if c.require_tls is None else c.require_tls,
                    headers=c.headers,
                    timeout=config.delivery.timeout,
                )
            elif isinstance(c, GitHubConfig):
                token = read_secret(c.token, c.token_file, base_dir=base, what=f"{where} token")
                notifier = GitHubNotifier(
                    c.repository,
                    token=_need(token, where, "token"),
                    client=client,
                    clock=clock,
                    index=issue_index,
                    api_url=c.api_url,
                    labels=c.labels,
                )
            elif isinstance(c, AlertmanagerForwardConfig):
                notifier = AlertmanagerNotifier(
                    c.url, client=client, clock=clock, headers=_auth_headers(c.http_config, config)
                )
            elif isinstance(c, DiscordConfig | MSTeamsConfig):
                url = read_secret(
                    c.webhook_url, c.webhook_url_file, base_dir=base, what=f"{where} webhook_url"
                )
                notifier = ChatWebhookNotifier(
                    _need(url, where, "webhook_url"), kind=kind, client=client, clock=clock
                )
            elif isinstance(c, SoulcasterConfig):
                secret = read_secret(
                    c.webhook_secret,
                    c.webhook_secret_file,
                    base_dir=base,
                    what=f"{where} webhook_secret",
                )
                notifier = SoulcasterNotifier(
                    c.url,
                    c.project_id,
                    client=client,
                    clock=clock,
                    webhook_secret=secret,
                    evidence=evidence,
                    max_body=c.max_body,
                )
            else:  # pragma: no cover - the union is exhaustive
                raise ConfigError(f"{where}: unsupported integration")
            out[key] = notifier
    return out


def _need(value: str | None, where: str, what: str) -> str:
    if not value:
        raise ConfigError(f"{where}: {what} is required (here or in global)")
    return value
