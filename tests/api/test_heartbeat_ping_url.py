"""The ping URL a token holder reads from the heartbeat API is absolute and works as is."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig
from soulwatch.sources.heartbeats import HeartbeatCheckConfig, HeartbeatsConfig
from tests.api.support import ADMIN, bearer, serve

UUID = "7c1e0d7a-3b9f-4c1e-8f4e-2a6b9d0c5e11"


def _heartbeats() -> HeartbeatsConfig:
    check = {"name": "reddit-poller", "uuid": UUID, "period": "10m", "grace": "5m"}
    return HeartbeatsConfig(checks=[HeartbeatCheckConfig.model_validate(check)])


@pytest.mark.parametrize("external", ["", "https://watch.soulcaster.test/"])
def test_ping_url_is_absolute_on_the_external_url_and_only_shown_with_a_token(
    tmp_path: Path, clock: SimulatedClock, external: str
) -> None:
    config = SoulwatchConfig.model_validate({"listen": "127.0.0.1:9797", "external_url": external})
    with serve(tmp_path, clock, heartbeats=_heartbeats(), config=config) as served:
        anonymous = served.http.get("/api/v1/heartbeats/reddit-poller").json()
        assert "ping_url" not in anonymous
        assert "uuid" not in anonymous
        shown = served.http.get("/api/v1/heartbeats/reddit-poller", headers=bearer(ADMIN)).json()
    base = external.rstrip("/") or "http://127.0.0.1:9797"
    assert shown["ping_url"] == f"{base}/ping/{UUID}"


def test_the_shown_ping_url_pings_the_check(tmp_path: Path, clock: SimulatedClock) -> None:
    with serve(tmp_path, clock, heartbeats=_heartbeats()) as served:
        listen = f"127.0.0.1:{served.server.port}"
        served.ctx.config = SoulwatchConfig.model_validate({"listen": listen})
        shown = served.http.get("/api/v1/heartbeats/reddit-poller", headers=bearer(ADMIN)).json()
        assert httpx.get(shown["ping_url"]).text == "OK"
        status = served.http.get("/api/v1/heartbeats/reddit-poller").json()["status"]
    assert status == "up"
