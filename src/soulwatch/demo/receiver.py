"""The demo's stand-in for the outside services: a webhook receiver, and E2B's sandbox listing.

soulwatch's webhook notifier posts Alertmanager's webhook payload (version 4);
the receiver records one :class:`Delivery` per alert in it, for the live
display and for ``soulwatch demo --check``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from soulwatch.clock import Clock


@dataclass(frozen=True)
class Delivery:
    """One alert in one notification, as a receiver got it."""

    receiver: str
    status: str
    alertname: str
    priority: str
    summary: str
    at: float


def sandbox_listing(sandbox_id: str) -> dict[str, object]:
    """One running sandbox as E2B's ``GET /v2/sandboxes`` lists it (every required field)."""
    return {
        "sandboxID": sandbox_id,
        "templateID": "soulcaster-agent",
        "clientID": "demo",
        "state": "running",
        "startedAt": "2026-01-01T00:00:00Z",
        "endAt": "2026-01-01T01:00:00Z",
        "cpuCount": 2,
        "memoryMB": 512,
        "diskSizeMB": 1024,
        "envdVersion": "0.2.0",
        "metadata": {},
    }


class Receiver:
    """Records deliveries per receiver path (``/page``, ``/chat``, ``/ticket``)."""

    def __init__(
        self,
        clock: Clock,
        *,
        on_delivery: Callable[[Delivery], None] | None = None,
        running_sandboxes: Callable[[], int] | None = None,
    ):
        self._clock = clock
        self.deliveries: list[Delivery] = []
        self._on_delivery = on_delivery
        self._running = running_sandboxes or (lambda: 0)
        self.app = Starlette(
            routes=[
                Route("/v2/sandboxes", self._sandboxes, methods=["GET"]),
                Route("/{receiver}", self._receive, methods=["POST"]),
            ]
        )

    async def _sandboxes(self, request: Request) -> JSONResponse:
        # Answers like E2B's API listing, one sandbox per running agent job.
        if request.headers.get("x-api-key") is None:
            return JSONResponse({"code": 401, "message": "missing API key"}, status_code=401)
        sandboxes = [sandbox_listing(f"demo{i}") for i in range(self._running())]
        return JSONResponse(sandboxes)

    async def _receive(self, request: Request) -> PlainTextResponse:
        receiver = request.path_params["receiver"]
        try:
            payload = json.loads(await request.body())
            alerts = payload["alerts"]
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("expected an Alertmanager webhook payload", status_code=400)
        for alert in alerts:
            labels = alert.get("labels", {})
            delivery = Delivery(
                receiver=receiver,
                status=str(alert.get("status", payload.get("status", ""))),
                alertname=str(labels.get("alertname", "")),
                priority=str(labels.get("priority", "")),
                summary=str(alert.get("annotations", {}).get("summary", "")),
                at=self._clock.time(),
            )
            self.deliveries.append(delivery)
            if self._on_delivery is not None:
                self._on_delivery(delivery)
        return PlainTextResponse("ok")

    def got(self, alertname: str, status: str, receiver: str | None = None) -> list[Delivery]:
        """Deliveries of ``alertname`` in ``status`` (``firing``/``resolved``)."""
        return [
            d
            for d in self.deliveries
            if d.alertname == alertname
            and d.status == status
            and (receiver is None or d.receiver == receiver)
        ]
