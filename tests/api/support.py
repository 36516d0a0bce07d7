"""Shared set-up of the API tests: a real app over real uvicorn, with real components."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from soulwatch.api.app import create_app
from soulwatch.api.context import ApiContext
from soulwatch.api.selectors import SelectorError, parse_selector
from soulwatch.clock import Clock
from soulwatch.config import ApiConfig, AuthConfig, TokenConfig
from soulwatch.exceptions import ParseError
from soulwatch.promql.values import QueryEngine, QueryResult, Sample, Scalar
from soulwatch.sources.heartbeats import HeartbeatMonitor, HeartbeatsConfig, HeartbeatStore
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Series
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


class _SelectorEngine:
    """Until the PromQL engine lands: numbers and bare selectors (last sample in 5m)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def instant(self, query: Any, t_ms: int) -> QueryResult:
        text = str(query).strip()
        with contextlib.suppress(ValueError):
            return QueryResult(Scalar(t_ms, float(text)))
        try:
            matchers = parse_selector(text)
        except SelectorError as exc:
            raise ParseError(str(exc)) from None
        out = []
        for s in self.storage.select(matchers, t_ms - 300_000, t_ms):
            out.append(Sample(s.labels, t_ms, s.values[-1]))
        return QueryResult(out)

    def range(self, query: Any, start_ms: int, end_ms: int, step_ms: int) -> QueryResult:
        series: dict[Any, Series] = {}
        t = start_ms
        while t <= end_ms:
            res = self.instant(query, t)
            if isinstance(res.value, Scalar):
                s = series.setdefault(Labels(), Series(Labels()))
                s.timestamps.append(t)
                s.values.append(res.value.value)
            else:
                for sample in res.value:
                    assert not isinstance(sample, Series)
                    key = sample.labels.without_name()
                    s = series.setdefault(key, Series(key))
                    s.timestamps.append(t)
                    s.values.append(sample.value)
            t += step_ms
        return QueryResult([series[k] for k in sorted(series)])


def engine_for(storage: Storage) -> QueryEngine:
    """soulwatch's PromQL engine over ``storage`` (a selector-only stand-in until it lands)."""
    try:
        module = importlib.import_module("soulwatch.promql.engine")
    except ImportError:
        return _SelectorEngine(storage)
    engine: QueryEngine = module.Engine(storage)
    return engine


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
        engine=engine_for(storage),
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
