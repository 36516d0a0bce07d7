"""Shared set-up of the API tests: a real app over real uvicorn, with real components."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from soulwatch.api.app import create_app
from soulwatch.api.context import ApiContext
from soulwatch.clock import Clock
from soulwatch.config import ApiConfig, AuthConfig, TokenConfig
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryEngine
from soulwatch.sources.heartbeats import HeartbeatMonitor, HeartbeatsConfig, HeartbeatStore
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.storage import Storage
from tests.helpers import UvicornThread

ADMIN = "admin-token-0123456789abcdef"
PUSHER = "push-token-0123456789abcdef"
SILENCER = "silence-token-0123456789abcdef"


def tokens() -> list[TokenConfig]:
    """One token per scope."""
    return [
        TokenConfig.model_validate({"name": "ops", "token": ADMIN, "scopes": ["admin"]}),
        TokenConfig.model_validate({"name": "ci", "token": PUSHER, "scopes": ["push"]}),
        TokenConfig.model_validate({"name": "oncall", "token": SILENCER, "scopes": ["silences"]}),
    ]


def bearer(token: str) -> dict[str, str]:
    """An ``Authorization`` header."""
    return {"Authorization": f"Bearer {token}"}


def engine_for(storage: Storage, clock: Clock) -> QueryEngine:
    """soulwatch's PromQL engine over ``storage``."""
    return Engine(storage, clock=clock)


class Served:
    """A running app with its context and an HTTP client."""

    def __init__(self, ctx: ApiContext, server: UvicornThread) -> None:
        self.ctx = ctx
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10)

    @property
    def url(self) -> str:
        """The base URL."""
        return self.server.url


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    clock: Clock,
    *,
    storage: Storage | None = None,
    heartbeats: HeartbeatsConfig | None = None,
    reads: str = "open",
    api: ApiConfig | None = None,
    **extra: Any,
) -> Iterator[Served]:
    """Serve the API over real uvicorn with real storage, engine and heartbeat store."""
    storage = storage or MemoryStorage()
    store = HeartbeatStore(tmp_path / "heartbeats.sqlite")
    monitor = HeartbeatMonitor(store, heartbeats or HeartbeatsConfig())
    ctx = ApiContext(
        storage=storage,
        engine=engine_for(storage, clock),
        clock=clock,
        api=api or ApiConfig(),
        auth=AuthConfig.model_validate({"reads": reads, "tokens": tokens()}),
        heartbeats=monitor,
        **extra,
    )
    server = UvicornThread(create_app(ctx))
    server.start()
    served = Served(ctx, server)
    try:
        yield served
    finally:
        served.http.close()
        server.stop()
        store.close()
