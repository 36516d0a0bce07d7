"""The parts of Soulcaster's ``backend/main.py`` that matter to monitoring it."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import uuid4

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel

from tests.soulcaster_app.store import add_feedback_item, add_job, ping, update_job

logger = logging.getLogger(__name__)

app = FastAPI(
    title="Soulcaster Ingestion API",
    description="API for ingesting user feedback from multiple sources",
    version="0.1.0",
)

# -- soulwatch adoption: the lines docs/soulcaster.md tells the team to add. --
from soulwatch.instrument import instrument  # noqa: E402

sw = instrument(app, service="backend")
sw.add_check("store", ping)  # store.ping: the store main.py already selected
# -- end of the adoption lines. --


@app.exception_handler(Exception)
async def global_exception_handler(request: Request, exc: Exception) -> Any:
    """Log all unhandled exceptions with full details."""
    logger.exception(f"Unhandled exception for {request.method} {request.url}: {exc}")
    # As in Soulcaster: Starlette calls the handler inside its `except`, so this re-raises.
    raise  # noqa: PLE0704


app.add_middleware(
    CORSMiddleware,
    allow_origins=["http://localhost:3000", "http://localhost:3001"],
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)


@app.get("/")
def read_root() -> dict[str, str]:
    return {"status": "ok", "service": "soulcaster-ingestion"}


@app.get("/health")
def health_check() -> dict[str, str]:
    try:
        environment = os.getenv("ENVIRONMENT", "development")
        store_healthy = ping()
        return {
            "status": "healthy",
            "service": "soulcaster-backend",
            "environment": environment,
            "storage": "connected" if store_healthy else "disconnected",
            "timestamp": datetime.now(UTC).isoformat(),
        }
    except Exception as e:
        logger.error(f"Health check failed: {e}")
        raise HTTPException(
            status_code=503,
            detail={
                "status": "unhealthy",
                "service": "soulcaster-backend",
                "error": str(e),
                "timestamp": datetime.now(UTC).isoformat(),
            },
        ) from e


class FeedbackItem(BaseModel):
    id: str
    project_id: str | None = None
    source: Literal["reddit", "sentry", "manual", "github", "splunk", "posthog", "datadog"]
    external_id: str | None = None
    title: str
    body: str
    metadata: dict[str, Any] = {}
    created_at: datetime


@app.post("/ingest/reddit")
def ingest_reddit(item: FeedbackItem, project_id: str | None = Query(None)) -> dict[str, str]:
    pid = project_id or item.project_id
    if not pid:
        raise HTTPException(status_code=400, detail="project_id is required")
    payload = item.model_dump()
    payload["project_id"] = pid
    payload["created_at"] = item.created_at.isoformat()
    add_feedback_item(payload)
    return {"status": "ok", "id": item.id, "project_id": pid}


class CreateJobRequest(BaseModel):
    cluster_id: str


class UpdateJobRequest(BaseModel):
    status: Literal["pending", "running", "success", "failed"] | None = None
    logs: str | None = None


@app.post("/jobs")
def create_job(payload: CreateJobRequest, project_id: str = Query(...)) -> dict[str, str]:
    now = datetime.now(UTC).isoformat()
    job = {
        "id": str(uuid4()),
        "project_id": project_id,
        "cluster_id": payload.cluster_id,
        "plan_id": None,
        "runner": None,
        "status": "pending",
        "logs": None,
        "pr_url": None,
        "blob_url": None,
        "created_at": now,
        "updated_at": now,
    }
    add_job(job)
    return {"status": "ok", "job_id": job["id"], "project_id": project_id}


@app.patch("/jobs/{job_id}")
def update_job_status(
    job_id: str, payload: UpdateJobRequest, project_id: str = Query(...)
) -> dict[str, str]:
    updates: dict[str, str] = {}
    if payload.status:
        updates["status"] = payload.status
    if payload.logs is not None:
        updates["logs"] = payload.logs
    updates["updated_at"] = datetime.now(UTC).isoformat()
    update_job(job_id, **updates)
    return {"status": "ok", "project_id": project_id}
