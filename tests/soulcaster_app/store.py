"""The store selection and key layout of Soulcaster's ``backend/store.py``."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any

import httpx
import redis

logger = logging.getLogger(__name__)


def _strip_quotes(value: str | None) -> str | None:
    return value.strip('"').strip("'") if value else None


class UpstashRESTClient:
    """Upstash's REST protocol: a JSON array command POSTed with a bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _cmd(self, *args: str) -> Any:
        resp = httpx.post(
            self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            json=list(args),
            timeout=10,
        )
        resp.raise_for_status()
        return resp.json().get("result")

    def hset(self, key: str, mapping: dict[str, str]) -> Any:
        flat = [x for kv in mapping.items() for x in kv]
        return self._cmd("HSET", key, *flat)

    def zadd(self, key: str, score: float, member: str) -> Any:
        return self._cmd("ZADD", key, str(score), member)

    def hgetall(self, key: str) -> dict[str, str]:
        flat = self._cmd("HGETALL", key) or []
        return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisStore:
    """Redis through redis-py (``REDIS_URL``/``UPSTASH_REDIS_URL``) or Upstash REST."""

    def __init__(self) -> None:
        url = _strip_quotes(os.getenv("REDIS_URL") or os.getenv("UPSTASH_REDIS_URL"))
        self.mode = "redis" if url else "rest"
        if url:
            self.client: Any = redis.from_url(url, decode_responses=True, socket_timeout=2)
        else:
            rest_url = _strip_quotes(os.getenv("UPSTASH_REDIS_REST_URL"))
            token = _strip_quotes(os.getenv("UPSTASH_REDIS_REST_TOKEN"))
            if not (rest_url and token):
                raise RuntimeError(
                    "RedisStore requires REDIS_URL/UPSTASH_REDIS_URL"
                    " or UPSTASH_REDIS_REST_URL/_TOKEN"
                )
            self.client = UpstashRESTClient(rest_url, token)

    def ping(self) -> bool:
        try:
            if self.mode == "redis":
                self.client.ping()
            else:
                self.client._cmd("PING")
            return True
        except Exception as e:
            logger.error(f"Redis ping failed: {e}")
            raise

    def _hset(self, key: str, mapping: dict[str, str]) -> None:
        if self.mode == "redis":
            self.client.hset(key, mapping=mapping)
        else:
            self.client.hset(key, mapping)

    def _zadd(self, key: str, score: float, member: str) -> None:
        if self.mode == "redis":
            self.client.zadd(key, {member: score})
        else:
            self.client.zadd(key, score, member)

    def _command(self, *args: str) -> None:
        if self.mode == "redis":
            self.client.execute_command(*args)
        else:
            self.client._cmd(*args)

    def _hgetall(self, key: str) -> dict[str, str]:
        return dict(self.client.hgetall(key) or {})

    def add_feedback_item(self, item: dict[str, Any]) -> None:
        payload = dict(item)
        if isinstance(payload.get("metadata"), dict):
            payload["metadata"] = json.dumps(payload["metadata"])
        project_id = str(item["project_id"])
        self._hset(
            f"feedback:{project_id}:{item['id']}",
            {k: str(v) for k, v in payload.items() if v is not None},
        )
        # The real store scores both sets by the item's created_at: for Reddit,
        # the post's created_utc, not the time of ingestion.
        ts = datetime.fromisoformat(item["created_at"]).timestamp()
        self._zadd(f"feedback:created:{project_id}", ts, str(item["id"]))
        self._zadd(f"feedback:source:{project_id}:{item['source']}", ts, str(item["id"]))
        self._command("SADD", f"feedback:unclustered:{project_id}", str(item["id"]))
        if item.get("external_id"):
            key = f"feedback:external:{project_id}:{item['source']}:{item['external_id']}"
            self._command("SET", key, str(item["id"]))

    def add_job(self, job: dict[str, Any]) -> None:
        self._hset(f"job:{job['id']}", {k: str(v) for k, v in job.items() if v is not None})
        ts = datetime.fromisoformat(job["created_at"]).timestamp()
        self._zadd(f"cluster:jobs:{job['cluster_id']}", ts, str(job["id"]))

    def update_job(self, job_id: str, **updates: str) -> None:
        if not self._hgetall(f"job:{job_id}"):
            raise KeyError(f"Job {job_id} not found")
        self._hset(f"job:{job_id}", updates)

    def add_cluster_job(self, job: dict[str, Any]) -> None:
        key = f"cluster_job:{job['project_id']}:{job['id']}"
        self._hset(key, {k: str(v) for k, v in job.items() if v is not None})
        ts = datetime.fromisoformat(job["created_at"]).timestamp()
        self._zadd(f"cluster_jobs:{job['project_id']}:recent", ts, str(job["id"]))


class InMemoryStore:
    """Local development without Redis."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    def ping(self) -> bool:
        return True

    def add_feedback_item(self, item: dict[str, Any]) -> None:
        self.hashes[f"feedback:{item['project_id']}:{item['id']}"] = {
            k: str(v) for k, v in item.items()
        }

    def add_job(self, job: dict[str, Any]) -> None:
        self.hashes[f"job:{job['id']}"] = {k: str(v) for k, v in job.items() if v is not None}

    def update_job(self, job_id: str, **updates: str) -> None:
        self.hashes[f"job:{job_id}"].update(updates)

    def add_cluster_job(self, job: dict[str, Any]) -> None:
        key = f"cluster_job:{job['project_id']}:{job['id']}"
        self.hashes[key] = {k: str(v) for k, v in job.items() if v is not None}


def _select_store() -> RedisStore | InMemoryStore:
    try:
        if (
            os.getenv("REDIS_URL")
            or os.getenv("UPSTASH_REDIS_URL")
            or os.getenv("UPSTASH_REDIS_REST_URL")
        ):
            return RedisStore()
    except Exception as exc:  # the real store falls back silently for local dev
        print(f"RedisStore unavailable, falling back to in-memory. Reason: {exc}")
    return InMemoryStore()


_STORE = _select_store()


def ping() -> bool:
    """The store's health check: True, or raises when the store is unreachable."""
    return _STORE.ping()


def add_feedback_item(item: dict[str, Any]) -> None:
    _STORE.add_feedback_item(item)


def add_job(job: dict[str, Any]) -> None:
    _STORE.add_job(job)


def update_job(job_id: str, **updates: str) -> None:
    _STORE.update_job(job_id, **updates)


def add_cluster_job(job: dict[str, Any]) -> None:
    _STORE.add_cluster_job(job)
