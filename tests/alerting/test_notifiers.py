"""Each notifier against a local stand-in for its service: payload shapes as documented."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import httpx
import pytest

from soulwatch.alerting.message import AlertInfo, Notification, Status, idempotency_key
from soulwatch.alerting.notifiers.alertmanager import AlertmanagerNotifier
from soulwatch.alerting.notifiers.chat import ChatWebhookNotifier
from soulwatch.alerting.notifiers.github import GitHubNotifier, marker
from soulwatch.alerting.notifiers.pagerduty import PagerDutyNotifier
from soulwatch.alerting.notifiers.slack import SlackNotifier
from soulwatch.alerting.notifiers.webhook import SIGNATURE_HEADER, WebhookNotifier
from soulwatch.exceptions import DeliveryError
from tests.helpers import RecordedRequest, Recorder, Reply

T0 = 1_700_000_000.0


def _notification(status: Status = Status.FIRING, *, priority: str = "P1") -> Notification:
    labels = {"alertname": "BackendDown", "priority": priority, "job": "backend-health"}
    info = AlertInfo(
        status=status,
        labels=labels,
        annotations={
            "summary": "Backend /health failing for 2m",
            "runbook_url": "https://runbooks.example/backend-down",
        },
        starts_at=T0,
        ends_at=T0 + 600 if status is Status.RESOLVED else None,
        fingerprint="abc123",
        generator_url="http://soulwatch:9090/graph?g0.expr=probe_success",
        value=0.0,
    )
    key = '{}/{priority="P1"}/0:{alertname="BackendDown"}'
    return Notification(
        receiver="page",
        integration="page/pagerduty/0",
        group_key=key,
        group_labels={"alertname": "BackendDown"},
        status=status,
        alerts=[info],
        external_url="http://soulwatch:9090",
        created_at=T0 + 120,
        idempotency_key=idempotency_key(key, "page/pagerduty/0", status, ["abc123@0:firing"], 0.0),
    )


async def test_webhook_payload_is_alertmanager_version_4_and_signed(recorder, clock):
    async with httpx.AsyncClient() as client:
        n = WebhookNotifier(
            f"{recorder.url}/hook", client=client, clock=clock, hmac_secret="s3cret"
        )
        await n.notify(_notification())
    (req,) = recorder.received("/hook")
    body = req.json()
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["version"] == "4"
    assert body["status"] == "firing"
    alert = body["alerts"][0]
    assert alert["startsAt"] == "2023-11-14T22:13:20Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    expected = hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"
    assert req.headers["idempotency-key"] == _notification().idempotency_key


async def test_slack_block_kit_firing_and_resolved(recorder, clock):
    async with httpx.AsyncClient() as client:
        n = SlackNotifier(f"{recorder.url}/slack", client=client, clock=clock, channel="#oncall")
        await n.notify(_notification())
        await n.notify(_notification(Status.RESOLVED))
    firing, resolved = (r.json() for r in recorder.received("/slack"))
    assert firing["channel"] == "#oncall"
    assert firing["blocks"][0]["type"] == "header"
    assert "FIRING" in firing["text"]
    assert "P1" in firing["text"]
    text = json.dumps(firing["blocks"])
    assert "Backend /health failing for 2m" in text
    assert "value `0`" in text
    buttons = next(b for b in firing["blocks"] if b["type"] == "actions")["elements"]
    urls = {b["text"]["text"]: b["url"] for b in buttons}
    assert urls == {
        "Runbook": "https://runbooks.example/backend-down",
        # The console's page about this very alert group.
        "Open in soulwatch": f"http://soulwatch:9090/alerts/group/{_notification().group_id}",
    }
    assert resolved["text"].startswith("✅ RESOLVED")


async def test_slack_429_is_retryable_with_retry_after(clock):
    with Recorder(default=Reply(429, b"rate_limited", {"Retry-After": "30"})) as rec:
        async with httpx.AsyncClient() as client:
            n = SlackNotifier(f"{rec.url}/slack", client=client, clock=clock)
            with pytest.raises(DeliveryError) as err:
                await n.notify(_notification())
    assert err.value.permanent is False
    assert err.value.retry_after == 30.0


async def test_bad_url_is_a_permanent_error(clock):
    async with httpx.AsyncClient() as client:
        n = SlackNotifier("htp:/nowhere", client=client, clock=clock)
        with pytest.raises(DeliveryError) as err:
            await n.notify(_notification())
    assert err.value.permanent is True


async def test_pagerduty_trigger_and_resolve_share_dedup_key(recorder, clock):
    async with httpx.AsyncClient() as client:
        n = PagerDutyNotifier(
            "R0UTINGKEY", client=client, clock=clock, url=f"{recorder.url}/v2/enqueue"
        )
        await n.notify(_notification())
        await n.notify(_notification(Status.RESOLVED))
    trigger, resolve = (r.json() for r in recorder.received("/v2/enqueue"))
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert re.fullmatch(r"[0-9a-f]{64}", trigger["dedup_key"])
    payload = trigger["payload"]
    assert payload["severity"] == "critical"  # P1
    assert payload["summary"] == "Backend /health failing for 2m"
    assert payload["source"] == "backend-health"
    assert payload["timestamp"] == "2023-11-14T22:13:20Z"
    assert payload["custom_details"]["num_firing"] == 1
    assert {"href": "https://runbooks.example/backend-down", "text": "Runbook"} in trigger["links"]
    assert resolve == {
        "routing_key": "R0UTINGKEY",
        "dedup_key": trigger["dedup_key"],
        "event_action": "resolve",
    }


async def test_pagerduty_priority_p2_is_warning(recorder, clock):
    async with httpx.AsyncClient() as client:
        n = PagerDutyNotifier("k", client=client, clock=clock, url=f"{recorder.url}/v2/enqueue")
        await n.notify(_notification(priority="P2"))
    assert recorder.received()[0].json()["payload"]["severity"] == "warning"


async def test_pagerduty_invalid_event_is_permanent(clock):
    with Recorder(default=Reply(400, b'{"status":"invalid event"}')) as rec:
        async with httpx.AsyncClient() as client:
            n = PagerDutyNotifier("k", client=client, clock=clock, url=f"{rec.url}/v2/enqueue")
            with pytest.raises(DeliveryError) as err:
                await n.notify(_notification())
    assert err.value.permanent is True
    assert err.value.status == 400


class FakeGitHub:
    """Scripted like GitHub's REST API for issues: create, comment, patch, search."""

    def __init__(self) -> None:
        self.issues: dict[int, dict] = {}
        self.comments: dict[int, list[str]] = {}

    def __call__(self, req: RecordedRequest) -> Reply:
        path = req.path.split("?")[0]
        if req.method == "GET" and path == "/search/issues":
            q = httpx.URL(req.path).params["q"]
            want = re.search(r'"([^"]+)"', q).group(1)
            items = [i for i in self.issues.values() if want in i["body"]]
            return _json({"total_count": len(items), "items": items})
        m = re.fullmatch(r"/repos/acme/soulcaster/issues(?:/(\d+))?(/comments)?", path)
        assert m, path
        body = req.json() if req.body else {}
        if req.method == "POST" and m.group(1) is None:
            number = len(self.issues) + 1
            self.issues[number] = {"number": number, "state": "open", **body}
            return _json(self.issues[number], 201)
        number = int(m.group(1))
        if m.group(2):
            self.comments.setdefault(number, []).append(body["body"])
            return _json({"id": 1, "body": body["body"]}, 201)
        self.issues[number].update(body)
        return _json(self.issues[number])


def _json(data: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


class MemoryIndex:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], int] = {}

    def get_issue(self, repository: str, group_id: str) -> int | None:
        return self.data.get((repository, group_id))

    def put_issue(self, repository: str, group_id: str, number: int) -> None:
        self.data[(repository, group_id)] = number


async def test_github_issue_opened_commented_closed_and_found_after_restart(clock):
    gh = FakeGitHub()
    with Recorder(handler=gh) as rec:
        async with httpx.AsyncClient() as client:

            def notifier(index: MemoryIndex) -> GitHubNotifier:
                return GitHubNotifier(
                    "acme/soulcaster",
                    token="t0ken",
                    client=client,
                    clock=clock,
                    index=index,
                    api_url=rec.url,
                    labels=["soulwatch"],
                )

            first = notifier(MemoryIndex())
            await first.notify(_notification(priority="P2"))
            await first.notify(_notification(priority="P2"))
            # A restart with an empty index finds the issue by its marker.
            await notifier(MemoryIndex()).notify(_notification(Status.RESOLVED, priority="P2"))
    assert list(gh.issues) == [1], "one issue per alert group"
    issue = gh.issues[1]
    assert issue["labels"] == ["soulwatch", "P2"]
    assert issue["title"].startswith("[soulwatch] BackendDown")
    assert marker(_notification().group_id) in issue["body"]
    assert issue["state"] == "closed"
    assert len(gh.comments[1]) == 2
    assert gh.comments[1][0].startswith("Still firing")
    assert gh.comments[1][1].startswith("Resolved")
    assert rec.received()[0].headers["authorization"] == "Bearer t0ken"


async def test_alertmanager_forward_body(recorder, clock):
    async with httpx.AsyncClient() as client:
        n = AlertmanagerNotifier(recorder.url, client=client, clock=clock)
        await n.notify(_notification())
        await n.notify(_notification(Status.RESOLVED))
    firing, resolved = (r.json() for r in recorder.received("/api/v2/alerts"))
    assert firing[0]["labels"]["alertname"] == "BackendDown"
    assert "endsAt" not in firing[0]
    assert resolved[0]["endsAt"] == "2023-11-14T22:23:20Z"


async def test_discord_and_teams_messages(recorder, clock):
    async with httpx.AsyncClient() as client:
        await ChatWebhookNotifier(
            f"{recorder.url}/d", kind="discord", client=client, clock=clock
        ).notify(_notification())
        await ChatWebhookNotifier(
            f"{recorder.url}/t", kind="msteams", client=client, clock=clock
        ).notify(_notification())
    discord = recorder.received("/d")[0].json()
    teams = recorder.received("/t")[0].json()
    assert "BackendDown" in discord["content"]
    assert discord["embeds"][0]["description"].endswith("Backend /health failing for 2m")
    assert teams["@type"] == "MessageCard"
    assert "BackendDown" in teams["title"]
