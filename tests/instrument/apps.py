"""Real FastAPI apps for the SDK tests, in-process or served by a uvicorn subprocess."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry

from soulwatch.instrument import configure_logging, init_sentry, instrument, redis_check

background_done = threading.Event()


def build_app(registry: CollectorRegistry | None = None, **settings: Any) -> FastAPI:
    """A small app with the routes the tests exercise, instrumented."""
    app = FastAPI()
    log = structlog.get_logger("tests.app")
    stdlib_log = logging.getLogger("tests.app.stdlib")

    @app.get("/clusters/{cluster_id}")
    async def get_cluster(cluster_id: str) -> dict[str, str]:
        return {"id": cluster_id}

    @app.post("/clusters/{cluster_id}/jobs")
    async def start_job(cluster_id: str) -> dict[str, str]:
        return {"id": cluster_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom with postgres://admin:hunter2@db.internal/app")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.15)
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, str]:
        background_done.clear()

        async def slow() -> None:
            await asyncio.sleep(1.5)
            background_done.set()

        tasks.add_task(slow)
        return {"status": "accepted"}

    @app.get("/logs")
    async def logs() -> dict[str, str]:
        log.info("structlog line", cluster="c1")
        stdlib_log.warning("stdlib line with Authorization: Bearer abcdef123456789")
        return {"ok": "yes"}

    settings.setdefault("configure_logs", False)
    instrument(app, service="test-backend", registry=registry, **settings)
    return app


def served_app() -> FastAPI:
    """The app a uvicorn subprocess serves (``--factory``), configured from the environment."""
    log_file = os.environ.get("SW_TEST_LOG_FILE")
    if log_file:
        stream = open(log_file, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
        configure_logging(format="json", level="INFO", service="test-backend", stream=stream)
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    dsn = os.environ.get("SW_TEST_SENTRY_DSN")
    if dsn:
        init_sentry(dsn, service="test-backend", environment="test", release="1.2.3")
    app = build_app()
    redis_url = os.environ.get("SW_TEST_REDIS_URL")
    if redis_url:
        # Instrumenting again returns the first Instrumentation.
        instrumentation = instrument(app, service="test-backend")
        instrumentation.add_check("redis", redis_check(redis_url, timeout=1.0), cache_seconds=0)
    return app
