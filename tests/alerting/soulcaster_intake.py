"""A stand-in for Soulcaster's backend that runs its Datadog webhook intake as Soulcaster does.

``POST /ingest/datadog/webhook?project_id=...`` follows Soulcaster's handler
(``backend/main.py`` and ``backend/datadog_client.py``) step by step: a
disabled integration answers ``filtered``; with a project secret the raw body
must carry ``X-Datadog-Signature`` = hex HMAC-SHA256 or the answer is 401; a
monitor filter (a list of ids, ``"*"`` for all) answers ``filtered`` for
other ids; the item's ``external_id`` is ``{id}-{date // 3600}`` and an
existing one answers ``duplicate``. Each project's settings are what its
``/config/datadog/*`` endpoints would have stored. ``outage`` answers 503
before any of that, as a backend that is down would.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Request


@dataclass
class Project:
    """One project's Datadog intake settings."""

    webhook_secret: str | None = None
    monitors: list[str] | None = None  # None: no filter
    enabled: bool | None = None


@dataclass
class SoulcasterIntake:
    """The intake's state: project settings, stored feedback items, the answers it gave."""

    projects: dict[str, Project] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    outage: int = 0  # answer 503 to this many requests first

    def app(self) -> FastAPI:
        """The FastAPI app serving the intake."""
        app = FastAPI()

        @app.post("/ingest/datadog/webhook")
        async def ingest_datadog_webhook(
            request: Request,
            payload: dict,  # type: ignore[type-arg]
            project_id: str | None = Query(None),
            x_datadog_signature: str | None = Header(None, alias="X-Datadog-Signature"),
        ) -> dict[str, Any]:
            if self.outage > 0:
                self.outage -= 1
                self.answers.append((503, "outage"))
                raise HTTPException(status_code=503, detail="Service Unavailable")
            try:
                answer = await self._ingest(request, payload, project_id, x_datadog_signature)
            except HTTPException as exc:
                self.answers.append((exc.status_code, str(exc.detail)))
                raise
            self.answers.append((200, answer["status"]))
            return answer

        return app

    async def _ingest(
        self,
        request: Request,
        payload: dict[str, Any],
        project_id: str | None,
        signature: str | None,
    ) -> dict[str, Any]:
        if not project_id:
            raise HTTPException(status_code=400, detail="project_id is required")
        pid = str(project_id)
        project = self.projects.get(pid, Project())
        if project.enabled is False:
            return {"status": "filtered", "project_id": pid}
        if project.webhook_secret:
            if not signature:
                raise HTTPException(status_code=401, detail="Missing X-Datadog-Signature header")
            body = await request.body()
            expected = hmac.new(project.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature, expected):
                raise HTTPException(status_code=401, detail="Invalid webhook signature")
        if project.monitors is not None:
            monitor_id = str(payload.get("id", ""))
            if "*" not in project.monitors and monitor_id not in project.monitors:
                return {
                    "status": "filtered",
                    "message": "Monitor not configured for ingestion",
                    "project_id": pid,
                }
        item = _feedback_item(payload, pid)
        for existing in self.items:
            if (existing["project_id"], existing["source"], existing["external_id"]) == (
                pid,
                "datadog",
                item["external_id"],
            ):
                return {"status": "duplicate", "id": existing["id"], "project_id": pid}
        self.items.append(item)
        return {"status": "ok", "id": item["id"], "project_id": pid}


def _feedback_item(event: dict[str, Any], project_id: str) -> dict[str, Any]:
    """``datadog_event_to_feedback_item``: the fields Soulcaster keeps."""
    alert_id = event.get("id", str(uuid.uuid4()))
    timestamp = event.get("date", int(time.time()))
    title = event.get("title", "Datadog Alert")
    body = event.get("body", "")
    return {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "source": "datadog",
        "external_id": f"{alert_id}-{timestamp // 3600}",
        "title": title,
        "body": body,
        "raw_text": f"{title} {body}",
        "metadata": {
            "alert_type": event.get("alert_type"),
            "priority": event.get("priority"),
            "tags": event.get("tags", []),
            "org_id": event.get("org", {}).get("id"),
            "snapshot_url": event.get("snapshot"),
        },
        "created_at": datetime.fromtimestamp(timestamp, tz=UTC),
    }
