"""The Reddit poll loop with the documented heartbeat, pinging a real soulwatch API."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig
from soulwatch.sources.heartbeats import HeartbeatCheckConfig, HeartbeatsConfig
from tests.api.support import ADMIN, bearer, serve

UUID = "2d0f3c5e-9a41-4b7e-8c6d-5e4f3a2b1c0d"
REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "soulcaster.md"


class _Stop(Exception):
    """Ends the otherwise endless loop after a few polls."""


def _sleeps(polls: int) -> Any:
    done: list[float] = []

    def sleep(seconds: float) -> None:
        done.append(seconds)
        if len(done) >= polls:
            raise _Stop

    return sleep


def test_the_poll_loop_pings_its_declared_check_every_poll(
    tmp_path: Path, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = {"name": "reddit-poller", "uuid": UUID, "period": "10m", "grace": "5m"}
    hb = HeartbeatsConfig(checks=[HeartbeatCheckConfig.model_validate(check)])
    with serve(tmp_path, clock, heartbeats=hb) as served:
        served.ctx.config = SoulwatchConfig.model_validate(
            {"listen": f"127.0.0.1:{served.server.port}"}
        )
        shown = served.http.get("/api/v1/heartbeats/reddit-poller", headers=bearer(ADMIN)).json()
        monkeypatch.setenv("POLLER_HEARTBEAT_URL", shown["ping_url"])
        import tests.soulcaster_app.reddit_poller as module

        poller_module = importlib.reload(module)
        ingested: list[dict[str, Any]] = []
        poller = poller_module.RedditPoller(
            fetch=lambda subs: [{"id": "t3_a", "subreddit": next(iter(subs))}],
            ingest_fn=ingested.append,
            sleep_fn=_sleeps(2),
        )
        with pytest.raises(_Stop):
            poller.run_forever()
        status = served.http.get("/api/v1/heartbeats/reddit-poller").json()
        pings = served.http.get(
            "/api/v1/heartbeats/reddit-poller/pings", headers=bearer(ADMIN)
        ).json()
    assert len(ingested) == 2
    assert status["status"] == "up"
    assert status["n_pings"] == 4
    kinds = sorted(p["kind"] for p in pings["pings"])
    assert kinds == ["start", "start", "success", "success"]


def test_without_a_heartbeat_url_the_poller_imports_and_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLLER_HEARTBEAT_URL", raising=False)
    import tests.soulcaster_app.reddit_poller as module

    poller_module = importlib.reload(module)
    assert poller_module.heartbeat is None
    ingested: list[dict[str, Any]] = []
    poller = poller_module.RedditPoller(
        fetch=lambda subs: [{"id": "t3_b"}], ingest_fn=ingested.append, sleep_fn=_sleeps(1)
    )
    with pytest.raises(_Stop):
        poller.run_forever(["claudeai"])
    assert ingested == [{"id": "t3_b"}]


def _adoption_lines(path: Path) -> list[str]:
    text = path.read_text()
    block = text.split("# -- soulwatch adoption:", 1)[1]
    block = block.split("# -- end of the adoption lines.", 1)[0]
    return [line for line in block.splitlines()[1:] if line.strip() and "noqa: E402" not in line]


def test_the_docs_show_the_adoption_lines_the_tested_apps_run() -> None:
    docs = DOCS.read_text()
    for app in ("main.py", "reddit_poller.py"):
        for line in _adoption_lines(REPO / "tests" / "soulcaster_app" / app):
            assert line in docs, f"{app}: {line!r} is not in docs/soulcaster.md"
    # The import line of main.py, without the marker that only the test file needs.
    assert "from soulwatch.instrument import instrument\n" in docs
    # The names the docs give exist in Soulcaster's code as the stand-ins mirror them.
    assert re.search(r"RedditPoller\.run_forever", docs)
    assert "POST /admin/trigger-poll" in docs
