"""Soulcaster feedback: each alert becomes a feedback item through Soulcaster's Datadog intake.

Soulcaster's backend already accepts Datadog monitor webhooks at
``POST <url>/ingest/datadog/webhook?project_id=<id>`` and turns each into a
feedback item its coding agent can pick up. This notifier speaks that intake
as it is, with no change on the Soulcaster side:

* one POST per alert of the notification, with the fields the intake reads:
  ``id``, ``date``, ``title``, ``body``, ``alert_type``, ``priority``,
  ``tags``, ``org.id`` and ``snapshot``;
* ``id`` is ``<alertname>-<fingerprint>``: stable for one alert rule and label
  set, so the project's monitor filter can name it and Soulcaster's
  de-duplication (``{id}-{date // 3600}``) folds the repeats of one hour;
* ``date`` is when the alert started firing (when it resolved, for a
  resolved one), in whole seconds: every repeat, regrouping or redelivery of
  one episode is a duplicate for Soulcaster, and a new episode an hour or
  more later is a new item;
* with a webhook secret, ``X-Datadog-Signature`` is the hex HMAC-SHA256 of
  the exact body bytes, as the intake verifies it (a wrong secret is a 401:
  a permanent failure the outbox reports).

The body is written for an agent to act on: summary, description, labels,
the rule's expression and its values around the event, the runbook, the
console link, and the evidence soulwatch holds (failing agent jobs with
their failure category and a log excerpt, the top failing routes and
exception types). It is bounded in size and scrubbed of secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.alerting.notifiers._http import request
from soulwatch.clock import Clock
from soulwatch.instrument.redact import redact, redact_text
from soulwatch.promql.ast import BinaryExpr, Expr, NumberLiteral, ParenExpr
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.promql.values import QueryEngine, Scalar, String
from soulwatch.tsdb.model import Series

SIGNATURE_HEADER: Final = "X-Datadog-Signature"
INTAKE_PATH: Final = "/ingest/datadog/webhook"
DEFAULT_MAX_BODY: Final = 16_000
"""Characters of ``body`` at most: enough for the evidence, small for a feedback item."""

_ALERT_TYPE: Final = {"P1": "error", "P2": "warning", "P3": "info", "P4": "info"}
_TITLE_MAX: Final = 200
_LOG_EXCERPT: Final = 1_200
_TRUNCATED: Final = "\n\n[... truncated by soulwatch to stay within max_body]"


# -- evidence -------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One titled block of the body's evidence."""

    title: str
    lines: list[str] = field(default_factory=list)


class FailedJob(Protocol):
    """What the Soulcaster collector remembers of a failed agent job."""

    @property
    def job_id(self) -> str:
        """The job's id (the ``{id}`` of ``job:{id}``)."""
        ...

    @property
    def category(self) -> str:
        """The failure category derived from its logs."""
        ...

    @property
    def finished_at(self) -> float | None:
        """When it failed (its ``updated_at``), Unix seconds."""
        ...

    @property
    def project_id(self) -> str:
        """Its Soulcaster project."""
        ...

    @property
    def cluster_id(self) -> str:
        """The feedback cluster it worked on."""
        ...

    @property
    def logs_tail(self) -> str:
        """The end of its logs."""
        ...


class EvidenceSource(Protocol):
    """Gathers what soulwatch knows about an alert, at delivery time."""

    async def sections(self, alert: AlertInfo, now: float) -> list[Section]:
        """The evidence blocks for ``alert``; never raises for missing data."""
        ...


def rule_expression(alert: AlertInfo) -> str:
    """The rule's PromQL, read back from the alert's generator URL (``g0.expr``)."""
    if not alert.generator_url:
        return ""
    query = parse_qs(urlsplit(alert.generator_url).query)
    return query.get("g0.expr", [""])[0]


_COMPARISONS: Final = frozenset({">", "<", ">=", "<=", "==", "!="})


def measured_expression(expr: str) -> Expr | None:
    """The measured side of ``x > threshold`` (and of ``x > t and guard``), else ``None``.

    A rule's expression only has values while the condition holds; an agent
    needs the measured values before and after it did, to see the trend.
    """
    node: Expr = parse_promql(expr)
    while True:
        while isinstance(node, ParenExpr):
            node = node.expr
        if isinstance(node, BinaryExpr) and node.op == "and":
            node = node.lhs
            continue
        break
    if (
        isinstance(node, BinaryExpr)
        and node.op in _COMPARISONS
        and not node.return_bool
        and isinstance(_unparen(node.rhs), NumberLiteral)
    ):
        return node.lhs
    return None


def _unparen(node: Expr) -> Expr:
    while isinstance(node, ParenExpr):
        node = node.expr
    return node


class MonitorEvidence:
    """Evidence from the monitor's own data: its PromQL engine and the collector's failed jobs.

    Which blocks an alert gets follows from its expression: one over the SDK's
    ``http_*`` metrics gets the top failing routes and exception types, one
    over agent-job metrics gets the failure categories and the last failed
    jobs with a log excerpt. Every alert gets its expression's values around
    the event.
    """

    def __init__(
        self,
        engine: QueryEngine,
        *,
        failed_jobs: Callable[[], Sequence[FailedJob]] | None = None,
        window: float = 1800.0,
        max_jobs: int = 5,
    ) -> None:
        self._engine = engine
        self._failed_jobs = failed_jobs
        self._window = window
        self._max_jobs = max_jobs

    async def sections(self, alert: AlertInfo, now: float) -> list[Section]:
        """Values around the event, then backend and agent-job evidence as they apply."""
        # The jobs are copied here, on the loop that updates them; the queries run
        # in a worker thread, as the query API runs them, so delivery never stalls the loop.
        jobs = list(self._failed_jobs()) if self._failed_jobs is not None else None
        return await asyncio.to_thread(self._gather, alert, now, jobs)

    def _gather(self, alert: AlertInfo, now: float, jobs: list[FailedJob] | None) -> list[Section]:
        expr = rule_expression(alert)
        out = [self._values_around(expr, alert, now)] if expr else []
        # The window ending a little after the alert started: what led to it,
        # the same on a redelivery hours later.
        at = min(now, alert.starts_at + 300)
        if "http_" in expr:
            out += self._backend(at)
        if "agent_job" in expr or alert.labels.get("alertname", "").startswith("Agent"):
            out += self._agents(at, alert.labels.get("category", ""), jobs)
        return out

    def _values_around(self, expr: str, alert: AlertInfo, now: float) -> Section:
        start = alert.starts_at - 600
        end = min(now, (alert.ends_at or alert.starts_at) + 300)
        step = 60.0
        title = "Values around the event (UTC, one per minute)"
        try:
            measured = measured_expression(expr)
            if measured is not None:
                title = "Values of the measured side, without the threshold, around the event"
                title += " (UTC, one per minute)"
            result = self._engine.range(
                measured if measured is not None else expr,
                round(start * 1000),
                round(max(end, start) * 1000),
                round(step * 1000),
            )
        except Exception as exc:  # the body still goes out, saying why values are missing
            return Section(title, [f"(could not evaluate: {type(exc).__name__}: {exc})"])
        if not isinstance(result.value, list) or not result.value:
            return Section(title, ["(no data in that window)"])
        found = [s for s in result.value if isinstance(s, Series)]
        # The series of this alert (its labels are among the alert's) come first and
        # alone when there are any: a per-category alert shows its category.
        mine = [s for s in found if s.labels.to_dict().items() <= alert.labels.items()]
        shown = mine or found
        lines: list[str] = []
        for series in shown[:3]:
            lines.append(f"{series.labels.to_dict() or '{}'}:")
            points = [(t / 1000, v) for t, v in series][-16:]
            lines.extend(f"  {_hhmm(t)}  {_number(v)}" for t, v in points)
        if len(shown) > 3:
            lines.append(f"(and {len(shown) - 3} more series)")
        return Section(title, lines)

    def _top(self, query: str, at: float, fmt: Callable[[dict[str, str], float], str]) -> list[str]:
        try:
            result = self._engine.instant(query, round(at * 1000))
        except Exception as exc:  # recorded in the body, never blocks delivery
            return [f"(could not evaluate: {type(exc).__name__}: {exc})"]
        if isinstance(result.value, Scalar | String) or not result.value:
            return ["(none recorded)"]
        rows = [
            (s.labels.to_dict(), s.value)
            for s in result.value
            if not isinstance(s, Series) and math.isfinite(s.value) and s.value > 0
        ]
        rows.sort(key=lambda r: -r[1])
        return [fmt(labels, v) for labels, v in rows] or ["(none recorded)"]

    def _backend(self, at: float) -> list[Section]:
        window = f"{round(self._window)}s"
        routes = self._top(
            "topk(5, sum by (job, route, status) "
            f'(increase(http_requests_total{{status=~"5.."}}[{window}])))',
            at,
            lambda lb, v: (
                f"- {lb.get('route', '?')} -> {lb.get('status', '?')}: {_count(v)} "
                f"({lb.get('job', '?')})"
            ),
        )
        exceptions = self._top(
            f"topk(5, sum by (job, route, exception) (increase(http_exceptions_total[{window}])))",
            at,
            lambda lb, v: (
                f"- {lb.get('exception', '?')} in {lb.get('route', '?')}: {_count(v)} "
                f"({lb.get('job', '?')})"
            ),
        )
        span = _duration(self._window)
        return [
            Section(f"Top failing routes (5xx, {span} before the event)", routes),
            Section(f"Top exception types (http_exceptions_total, {span} before)", exceptions),
        ]

    def _agents(self, at: float, category: str, failed: list[FailedJob] | None) -> list[Section]:
        window = f"{round(self._window)}s"
        categories = self._top(
            "sum by (category) (increase(soulcaster_agent_jobs_finished_total"
            f'{{outcome="failed"}}[{window}]))',
            at,
            lambda lb, v: f"- {lb.get('category', '?')}: {_count(v)}",
        )
        out = [Section(f"Failure categories ({_duration(self._window)} before)", categories)]
        if failed is not None:
            jobs = [j for j in failed if not category or j.category == category]
            jobs = jobs[-self._max_jobs :]
            lines: list[str] = []
            for job in reversed(jobs):
                when = _hhmm(job.finished_at) if job.finished_at is not None else "?"
                where = ", ".join(
                    f"{k} {v}"
                    for k, v in (("project", job.project_id), ("cluster", job.cluster_id))
                    if v
                )
                lines.append(
                    f"- job {job.job_id}: {job.category}, failed {when}"
                    + (f" ({where})" if where else "")
                )
                tail = job.logs_tail[-_LOG_EXCERPT:].strip()
                if tail:
                    lines.extend(f"    {line}" for line in tail.splitlines())
            title = "Last failed agent jobs" + (f" of category {category}" if category else "")
            out.append(Section(f"{title} (newest first)", lines or ["(none seen)"]))
        return out


# -- the payload ----------------------------------------------------------------


def feedback_id(alert: AlertInfo) -> str:
    """The stable id of one alert rule and label set: ``<alertname>-<fingerprint>``."""
    return f"{alert.labels.get('alertname', 'alert')}-{alert.fingerprint}"


def feedback_payload(
    n: Notification,
    alert: AlertInfo,
    *,
    sections: Sequence[Section] = (),
    max_body: int = DEFAULT_MAX_BODY,
    org_id: str = "soulwatch",
) -> dict[str, Any]:
    """The Datadog-webhook-shaped body Soulcaster's intake turns into one feedback item."""
    labels = alert.labels
    name = labels.get("alertname", "alert")
    priority = labels.get("priority", "").upper()
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or name
    resolved = alert.status is Status.RESOLVED
    title = f"{'[Resolved] ' if resolved else ''}{name}: {summary}"
    payload: dict[str, Any] = {
        "id": feedback_id(alert),
        "date": int(alert.ends_at if resolved and alert.ends_at else alert.starts_at),
        "title": redact_text(title)[:_TITLE_MAX],
        "body": render_body(n, alert, sections, max_body=max_body),
        "alert_type": "success" if resolved else _ALERT_TYPE.get(priority, "error"),
        "priority": priority or "normal",
        "tags": sorted(f"{k}:{v}" for k, v in labels.items())[:50],
        "org": {"id": org_id},
        "snapshot": console_link(n, alert),
    }
    return redact(payload)  # type: ignore[no-any-return]


def console_link(n: Notification, alert: AlertInfo) -> str:
    """The console's page about ``alert`` (empty without an external URL)."""
    return f"{n.external_url.rstrip('/')}/alerts/{alert.fingerprint}" if n.external_url else ""


def render_body(
    n: Notification, alert: AlertInfo, sections: Sequence[Section], *, max_body: int
) -> str:
    """The feedback text: what fired, the rule and its values, evidence, where to look."""
    a = alert.annotations
    name = alert.labels.get("alertname", "alert")
    state = "resolved" if alert.status is Status.RESOLVED else "firing"
    head = [f"soulwatch alert {name} is {state}"]
    head.append(f"Since: {_iso(alert.starts_at)}")
    if alert.ends_at is not None:
        head.append(f"Resolved: {_iso(alert.ends_at)}")
    if a.get("summary"):
        head.append(f"Summary: {a['summary']}")
    if a.get("description"):
        head.append(f"Description: {a['description']}")
    if alert.value is not None:
        head.append(f"Value at the last evaluation: {_number(alert.value)}")
    blocks = ["\n".join(head)]
    blocks.append("Labels:\n" + "\n".join(f"- {k}: {v}" for k, v in sorted(alert.labels.items())))
    expr = rule_expression(alert)
    if expr:
        blocks.append("Rule expression:\n" + "\n".join(f"    {line}" for line in expr.splitlines()))
    links = []
    if a.get("runbook_url"):
        links.append(f"Runbook: {a['runbook_url']}")
    if n.external_url:
        links.append(f"soulwatch console: {console_link(n, alert)}")
    if alert.generator_url:
        links.append(f"Query: {alert.generator_url}")
    others = {k: v for k, v in a.items() if k not in ("summary", "description", "runbook_url")}
    if others:
        links.append("\n".join(f"{k}: {v}" for k, v in sorted(others.items())))
    if links:
        blocks.append("\n".join(links))
    blocks.extend(f"{s.title}:\n" + "\n".join(s.lines) for s in sections if s.lines)
    # Scrub a bounded prefix (masking shortens, never lengthens much), then cut.
    text = redact_text("\n\n".join(blocks)[: max_body * 2])
    if len(text) > max_body:
        text = text[: max(0, max_body - len(_TRUNCATED))] + _TRUNCATED
    return text


def sign(secret: str, body: bytes) -> str:
    """``X-Datadog-Signature``: the hex HMAC-SHA256 of the raw body, as Soulcaster verifies it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SoulcasterNotifier:
    """Posts every alert of a notification to Soulcaster's Datadog webhook intake."""

    def __init__(
        self,
        url: str,
        project_id: str,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        webhook_secret: str | None = None,
        evidence: EvidenceSource | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._endpoint = url.rstrip("/") + INTAKE_PATH
        self._project_id = project_id
        self._client = client
        self._clock = clock
        self._secret = webhook_secret
        self._evidence = evidence
        self._max_body = max_body

    async def notify(self, notification: Notification) -> None:
        """POST one feedback payload per alert; the first refusal stops and is raised."""
        for alert in notification.alerts:
            sections: list[Section] = []
            if self._evidence is not None and alert.status is Status.FIRING:
                sections = await self._evidence.sections(alert, self._clock.time())
            payload = feedback_payload(
                notification, alert, sections=sections, max_body=self._max_body
            )
            body = json.dumps(payload, ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"{notification.idempotency_key}:{alert.fingerprint}",
            }
            if self._secret:
                headers[SIGNATURE_HEADER] = sign(self._secret, body)
            await request(
                self._client,
                "POST",
                self._endpoint,
                content=body,
                headers=headers,
                params={"project_id": self._project_id},
                now=self._clock.time(),
                what="soulcaster",
            )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hhmm(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def _number(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _count(v: float) -> str:
    return str(round(v)) if abs(v - round(v)) < 0.05 else f"{v:.1f}"


def _duration(seconds: float) -> str:
    return f"{round(seconds / 60)}m" if seconds < 7200 else f"{round(seconds / 3600)}h"
