"""The demo's sample Soulcaster-like backend: a FastAPI app instrumented with soulwatch's SDK.

Its routes mirror the real backend's shape (``/ingest/*``, ``/cluster-jobs/*``,
``/jobs``, ``/admin/trigger-poll``); ``/health``, ``/ready`` and ``/metrics``
come from :func:`soulwatch.instrument.instrument`. Faults from
:class:`~soulwatch.demo.faults.Faults` turn into 500s and latency.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry

from soulwatch.demo.browsers import RUM_KEY
from soulwatch.demo.faults import Faults

_DASHBOARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Soulcaster demo dashboard</title>
<script src="{agent}" data-site="{key}" defer></script></head>
<body><h1>Clusters</h1><p>This page reports its page views and web vitals to soulwatch.</p>
</body></html>
"""


def create_backend(
    faults: Faults,
    *,
    redis_url: str,
    registry: CollectorRegistry | None = None,
    rng: random.Random | None = None,
    soulwatch_url: str | None = None,
) -> FastAPI:
    """A fresh backend app with its own metrics registry."""
    from soulwatch.instrument import instrument
    from soulwatch.instrument.health import redis_check

    app = FastAPI(title="soulcaster-demo-backend")
    chance = rng or random.Random(7)
    polls: list[str] = []

    async def behave() -> None:
        if faults.extra_latency:
            await asyncio.sleep(faults.extra_latency)
        if faults.error_rate and chance.random() < faults.error_rate:
            raise HTTPException(status_code=500, detail="injected fault")

    @app.post("/ingest/reddit")
    async def ingest_reddit() -> dict[str, Any]:
        await behave()
        return {"ingested": 1}

    @app.post("/ingest/sentry")
    async def ingest_sentry() -> dict[str, Any]:
        await behave()
        return {"ingested": 1}

    @app.get("/cluster-jobs/{project_id}")
    async def cluster_jobs(project_id: str) -> dict[str, Any]:
        await behave()
        return {"project_id": project_id, "jobs": []}

    @app.get("/jobs")
    async def jobs() -> dict[str, Any]:
        await behave()
        return {"jobs": []}

    @app.post("/admin/trigger-poll")
    async def trigger_poll(project_id: str = "demo") -> dict[str, Any]:
        polls.append(project_id)
        return {"triggered": project_id}

    if soulwatch_url:
        page = _DASHBOARD.format(agent=f"{soulwatch_url}/rum/v1/agent.js", key=RUM_KEY)

        @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
        async def dashboard() -> str:
            # A stand-in for Soulcaster's Next.js dashboard page, with the browser agent.
            return page

    app.state.polls = polls
    instrument(
        app,
        "backend",
        registry=registry or CollectorRegistry(),
        checks={"redis": redis_check(redis_url)},
        configure_logs=False,
        version="demo",
    )
    return app
