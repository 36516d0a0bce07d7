"""GitHub issues as tickets: one issue per alert group.

Firing opens an issue (labels from the config plus the alert's priority) or
comments on the group's existing one; resolved comments and closes it; firing
again reopens it. The issue for a group is found again after a restart from
the :class:`IssueIndex` (kept in the outbox database) or, failing that, by
searching the repository for the marker ``soulwatch-group:<id>`` written in
every issue body.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from soulwatch.alerting.message import Notification, Status
from soulwatch.alerting.notifiers._http import (
    describe,
    raise_for_response,
    request,
    retry_after,
)
from soulwatch.clock import Clock
from soulwatch.exceptions import DeliveryError

#: How long to wait on a rate limit that names no reset time.
RATE_LIMIT_WAIT = 60.0


class IssueIndex(Protocol):
    """Remembers which issue belongs to which alert group."""

    def get_issue(self, repository: str, group_id: str) -> int | None:
        """The issue number for the group, if known."""
        ...

    def put_issue(self, repository: str, group_id: str, number: int) -> None:
        """Remember the issue number for the group."""
        ...


def github_raise_for_response(response: httpx.Response, now: float, what: str) -> None:
    """GitHub's reading of a response: a rate limit is a 403 (or 429) worth
    retrying once the limit resets, not a permanent refusal."""
    status = response.status_code
    headers = response.headers
    limited = status in {403, 429} and (
        headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in headers
        or "rate limit" in response.text[:500].lower()
    )
    if not limited:
        raise_for_response(response, now, what)
        return
    wait = retry_after(headers.get("retry-after"), now)
    reset = headers.get("x-ratelimit-reset")
    if wait is None and reset is not None and reset.isdigit():
        wait = max(0.0, float(reset) - now)
    raise DeliveryError(
        describe(response, what) + " (rate limited)",
        permanent=False,
        retry_after=RATE_LIMIT_WAIT if wait is None else wait,
        status=status,
    )


def marker(group_id: str) -> str:
    """The searchable marker put in every issue body."""
    return f"soulwatch-group:{group_id[:32]}"


def _body(n: Notification) -> str:
    lines = []
    for a in n.alerts:
        summary = a.annotations.get("summary", a.labels.get("alertname", ""))
        labels = ", ".join(f"`{k}={v}`" for k, v in sorted(a.labels.items()))
        lines.append(f"- **{a.status.value}** {summary} — {labels}")
        if a.annotations.get("runbook_url"):
            lines.append(f"  - runbook: {a.annotations['runbook_url']}")
    lines += [f"- {note}" for note in n.notes]
    if n.external_url:
        lines.append(f"\n[Open in soulwatch]({n.external_url})")
    return "\n".join(lines)


class GitHubNotifier:
    """Opens, comments on and closes issues through GitHub's REST API."""

    def __init__(
        self,
        repository: str,
        *,
        token: str,
        client: httpx.AsyncClient,
        clock: Clock,
        index: IssueIndex,
        api_url: str = "https://api.github.com",
        labels: list[str] | None = None,
    ) -> None:
        self._repo = repository
        self._client = client
        self._clock = clock
        self._index = index
        self._api = api_url.rstrip("/")
        self._labels = labels or []
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await request(
            self._client,
            method,
            f"{self._api}{path}",
            headers=self._headers,
            now=self._clock.time(),
            what="github",
            check=github_raise_for_response,
            **kwargs,
        )
        return response.json() if response.content else None

    async def _find(self, group_id: str) -> int | None:
        known = self._index.get_issue(self._repo, group_id)
        if known is not None:
            return known
        found = await self._call(
            "GET",
            "/search/issues",
            params={"q": f'repo:{self._repo} is:issue in:body "{marker(group_id)}"'},
        )
        for item in (found or {}).get("items", []):
            if marker(group_id) in (item.get("body") or ""):
                number = int(item["number"])
                self._index.put_issue(self._repo, group_id, number)
                return number
        return None

    async def notify(self, notification: Notification) -> None:
        """Open, comment on or close the group's issue."""
        n = notification
        number = await self._find(n.group_id)
        body = _body(n)
        issue_path = f"/repos/{self._repo}/issues"
        if n.status is Status.FIRING:
            if number is None:
                name = n.common_labels.get("alertname", "alert")
                summary = n.firing[0].annotations.get("summary", "") if n.firing else ""
                labels = list(self._labels)
                if n.common_labels.get("priority"):
                    labels.append(n.common_labels["priority"])
                created = await self._call(
                    "POST",
                    issue_path,
                    json={
                        "title": f"[soulwatch] {name}" + (f": {summary}" if summary else ""),
                        "body": f"{body}\n\n<!-- {marker(n.group_id)} -->",
                        "labels": labels,
                    },
                )
                self._index.put_issue(self._repo, n.group_id, int(created["number"]))
                return
            await self._call("PATCH", f"{issue_path}/{number}", json={"state": "open"})
            await self._call(
                "POST", f"{issue_path}/{number}/comments", json={"body": f"Still firing:\n{body}"}
            )
            return
        if number is None:
            return  # nothing was ever opened for this group
        await self._call(
            "POST", f"{issue_path}/{number}/comments", json={"body": f"Resolved:\n{body}"}
        )
        await self._call(
            "PATCH", f"{issue_path}/{number}", json={"state": "closed", "state_reason": "completed"}
        )
