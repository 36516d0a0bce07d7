"""A served app whose errors, logs and bodies carry every secret shape the SDK must scrub."""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import FastAPI, Request

from soulwatch.instrument import configure_logging, init_sentry, instrument

SECRETS = (
    "hunter2",
    "abcdef123456789",
    "sk-live-1234567890",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlMTIz",
    "s3cretpass",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ada.lovelace@example.com",
)
"""Every secret the app leaks somewhere; none of them may leave the process."""


def served_app() -> FastAPI:
    """The app a uvicorn subprocess serves (``--factory``), logging and Sentry from the env."""
    log_file = os.environ.get("SW_TEST_LOG_FILE")
    if log_file:
        stream = open(log_file, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
        fmt = os.environ.get("SW_TEST_LOG_FORMAT", "json")
        configure_logging(format=fmt, level="INFO", service="leaky", stream=stream)  # type: ignore[arg-type]
    dsn = os.environ.get("SW_TEST_SENTRY_DSN")
    if dsn:
        traces = float(os.environ.get("SW_TEST_SENTRY_TRACES", "0"))
        init_sentry(dsn, service="leaky", environment="test", traces_sample_rate=traces)
    app = FastAPI()
    log = logging.getLogger("tests.leaky")

    @app.post("/signup")
    async def signup(request: Request) -> None:
        body: dict[str, Any] = await request.json()
        # Locals Sentry serialises as frame variables.
        api_token = "token=abcdef123456789"
        aws = "AKIAIOSFODNN7EXAMPLE"
        log.warning("calling billing with api_key: sk-live-1234567890 for %s", body["email"])
        log.info("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlMTIz")
        raise RuntimeError(
            f"login failed password=hunter2 for {body['email']} via "
            f"postgres://app:s3cretpass@db.internal/app ({len(api_token)}, {len(aws)}) "
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    instrument(app, service="leaky", configure_logs=False)
    return app
