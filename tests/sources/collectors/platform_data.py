"""Redis data shaped exactly like the Soulcaster platform writes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = 1_780_000_000.0  # 2026-05-28, the tests' simulated "now"


def iso(t: float) -> str:
    """An ISO timestamp as the backend writes it (naive UTC, microseconds)."""
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None).isoformat()


def put_job(
    client: Any,
    job_id: str,
    status: str,
    *,
    created: float,
    updated: float | None = None,
    logs: str = "",
    project: str = "proj-1",
) -> None:
    """An agent job hash ``job:{id}`` with the platform's field names and string values."""
    client.hset(
        f"job:{job_id}",
        mapping={
            "id": job_id,
            "status": status,
            "created_at": iso(created),
            "updated_at": iso(updated if updated is not None else created),
            "logs": logs,
            "runner": "e2b",
            "project_id": project,
            "cluster_id": f"cluster-{job_id}",
            "pr_url": "" if status != "success" else f"https://github.com/acme/app/pull/{job_id}",
        },
    )


def put_cluster_job(
    client: Any, project: str, job_id: str, status: str, *, started: float, finished: float | None
) -> None:
    """A cluster job hash ``cluster_job:{project_id}:{job_id}``."""
    client.hset(
        f"cluster_job:{project}:{job_id}",
        mapping={
            "id": job_id,
            "project_id": project,
            "status": status,
            "started_at": iso(started),
            "finished_at": iso(finished) if finished is not None else "",
            "error": "" if status != "failed" else "embedding service unavailable",
        },
    )
