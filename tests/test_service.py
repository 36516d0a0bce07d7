"""The monitor wired in-process on a simulated clock: loops, dead man's switch, reload, stop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError
from soulwatch.service import Monitor
from soulwatch.sources.heartbeats import Ping, PingKind
from soulwatch.tsdb.model import Matcher
from tests.helpers import Recorder

UUID = "0b4a4e5c-1f3e-4d3a-9a63-0e6c3f7b1a11"


def _config(tmp_path: Path, deadman: str, rules: str = "rules.yml") -> str:
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "global: {evaluation_interval: 10s}\n"
        f"rule_files: [{tmp_path / rules}]\n"
        f"heartbeats:\n  checks:\n    - {{name: poller, uuid: {UUID}, period: 1m, grace: 30s}}\n"
        f"self_monitoring: {{interval: 1m, deadman_url: '{deadman}'}}\n"
    )


def _latest(monitor: Monitor, name: str) -> float:
    series = list(monitor.storage.select([Matcher.equal("__name__", name)], 0, 2**62))
    assert len(series) == 1
    return series[0].values[-1]


async def test_monitor_runs_its_loops_on_the_clock(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: hb\n    rules:\n"
        "      - record: heartbeat_up:min\n        expr: min(heartbeat_up)\n"
    )
    config = parse_config(_config(tmp_path, f"{recorder.url}/ping/deadman"), environ={})
    monitor = Monitor(config, clock=clock)
    await monitor.start()
    try:
        assert monitor.heartbeats.by_name("poller") is not None
        monitor.heartbeats.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
        await clock.advance(20)
        await _eventually(lambda: _latest(monitor, "heartbeat_up") == 1.0)
        # Past period + grace: the heartbeat loop marks it down and writes 0.
        for _ in range(10):
            await clock.advance(10)
        await _eventually(lambda: _latest(monitor, "heartbeat_up") == 0.0)
        # The recording rule runs on the same clock over the same storage.
        for _ in range(6):
            await clock.advance(10)
            with contextlib.suppress(AssertionError):
                await _eventually(lambda: _latest(monitor, "heartbeat_up:min") == 0.0, 2.0)
                break
        assert _latest(monitor, "heartbeat_up:min") == 0.0
        # The dead man's switch was pinged at start and every interval.
        assert len(recorder.received("/ping/deadman")) >= 2
        assert monitor.health()["status"] == "ok"
    finally:
        await monitor.stop()
    assert monitor.health()["status"] == "degraded"


async def test_a_bad_reload_keeps_the_old_config(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "bad.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x)\n"
    )
    config = parse_config(_config(tmp_path, f"{recorder.url}/d"), environ={})
    monitor = Monitor(config, clock=clock)
    await monitor.start()
    try:
        bad = parse_config(_config(tmp_path, f"{recorder.url}/d", rules="bad.yml"), environ={})
        with pytest.raises(ConfigError, match=r"bad\.yml"):
            await monitor.reload(bad)
        assert monitor.config is config
        assert _gauge(monitor, "soulwatch_config_last_reload_successful") == 0.0
        good = parse_config(
            _config(tmp_path, f"{recorder.url}/d").replace("poller", "backup"), environ={}
        )
        await monitor.reload(good)
        assert [c.name for c in monitor.heartbeats.checks()] == ["backup"]
        assert _gauge(monitor, "soulwatch_config_last_reload_successful") == 1.0
    finally:
        await monitor.stop()


async def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    # Storage work runs in worker threads; give them real time to finish (bounded).
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _gauge(monitor: Monitor, name: str) -> float:
    value = monitor.registry.get_sample_value(name)
    assert value is not None
    assert not math.isnan(value)
    return value


async def test_receivers_show_their_last_delivery_error(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from tests.helpers import Reply

    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n"
    )
    with Recorder(default=Reply(status=500, body=b"boom")) as hook:
        text = (
            f"data_dir: {tmp_path / 'data'}\n"
            "global: {evaluation_interval: 10s}\n"
            f"rule_files: [{tmp_path / 'rules.yml'}]\n"
            "alerting:\n  route: {receiver: hook, group_wait: 0s}\n"
            f"  receivers:\n    - name: hook\n      webhook_configs: [{{url: '{hook.url}/x'}}]\n"
        )
        monitor = Monitor(parse_config(text, environ={}), clock=clock)
        await monitor.start()
        try:
            assert monitor.ctx.receivers is not None
            view = monitor.ctx.receivers

            def failing() -> bool:
                [receiver] = view.receivers()
                [integration] = receiver["integrations"]
                return bool(integration["lastError"]) and integration["failing"]

            for _ in range(10):
                await clock.advance(10)
                with contextlib.suppress(AssertionError):
                    await _eventually(failing, 2.0)
                    break
            assert failing()
            assert hook.received("/x")
            [receiver] = view.receivers()
            assert receiver["name"] == "hook"
            assert "500" in receiver["integrations"][0]["lastError"]
        finally:
            await monitor.stop()


# --- automatic recovery, wired through soulwatch.yaml --------------------------------

_POLLER_RULES = (
    "groups:\n  - name: poller\n    rules:\n"
    "      - alert: PollerHeartbeatMissing\n"
    '        expr: heartbeat_up{check="poller"} == 0\n'
    "        labels: {priority: P1, action: trigger-poll}\n"
    "        annotations: {summary: the Reddit poller missed its heartbeat}\n"
)


def _recovery_config(tmp_path: Path, backend: str, page: str) -> str:
    (tmp_path / "rules.yml").write_text(_POLLER_RULES)
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "external_url: https://soulwatch.example\n"
        "global: {evaluation_interval: 10s}\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        f"heartbeats:\n  checks:\n    - {{name: poller, uuid: {UUID}, period: 1m, grace: 30s}}\n"
        "alerting:\n"
        "  route: {receiver: page, group_wait: 0s, group_interval: 1m, repeat_interval: 4h}\n"
        f"  receivers:\n    - name: page\n      webhook_configs: [{{url: '{page}/page'}}]\n"
        "  delivery: {initial_backoff: 1s, max_backoff: 5s, deadline: 10m}\n"
        "  actions:\n"
        "    - name: trigger-poll\n"
        f"      http: {{url: '{backend}/admin/trigger-poll?project_id=p1'}}\n"
        "      verify_after: 2m\n"
        "      cooldown: 10m\n"
    )


async def _step_until(
    clock: SimulatedClock, predicate: Callable[[], bool], *, steps: int, seconds: float = 10
) -> None:
    """Advance the clock ``seconds`` at a time until ``predicate`` holds (bounded)."""
    for _ in range(steps):
        await clock.advance(seconds)
        with contextlib.suppress(AssertionError):
            await _eventually(predicate, 1.0)
            return
    raise AssertionError(f"not reached within {steps * seconds:g} simulated seconds")


async def test_a_failed_auto_recovery_pages_with_a_note(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from datetime import UTC, datetime

    from soulwatch.service import run_inline

    with Recorder() as backend, Recorder() as page:
        text = _recovery_config(tmp_path, backend.url, page.url)
        monitor = Monitor(parse_config(text, environ={}), clock=clock, run_blocking=run_inline)
        await monitor.start()
        try:
            start = clock.time()
            monitor.heartbeats.ping_uuid(UUID, Ping(start, PingKind.SUCCESS))
            # The poller stops: past period + grace the alert fires and the action runs.
            await _step_until(
                clock, lambda: bool(backend.received("/admin/trigger-poll")), steps=20
            )
            [call] = backend.received("/admin/trigger-poll")
            assert call.method == "POST"
            assert call.path == "/admin/trigger-poll?project_id=p1"
            called_by = clock.time()
            runner = monitor.actions
            assert runner is not None
            await _eventually(lambda: len(runner.audit()) == 1)
            [run] = runner.audit()
            # It ran when the alert started firing: past the 1m period + 30s grace.
            assert start + 90 < run.started_at <= called_by
            tried_at = datetime.fromtimestamp(run.started_at, UTC).strftime("%H:%M")
            # The page is held while the action gets its chance (verify_after: 2m)...
            while clock.time() < run.started_at + 100:
                await clock.advance(10)
            await asyncio.sleep(0.2)
            assert page.received("/page") == []
            # ...and goes out once verify_after (2m) has passed with the alert still firing.
            await _step_until(clock, lambda: bool(page.received("/page")), steps=6)
            body = page.received("/page")[0].json()
            [alert] = body["alerts"]
            assert alert["labels"]["alertname"] == "PollerHeartbeatMissing"
            assert alert["status"] == "firing"
            note = alert["annotations"]["auto_recovery"]
            assert note.startswith(f"auto-recovery tried at {tried_at} UTC")
            assert "failed" in note
            assert body["externalURL"] == "https://soulwatch.example"
            # The action ran once (cooldown 10m): still one call to the backend.
            assert len(backend.received("/admin/trigger-poll")) == 1
        finally:
            await monitor.stop()


async def test_an_auto_recovery_that_works_pages_nobody(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from soulwatch.service import run_inline

    with Recorder() as backend, Recorder() as page:
        text = _recovery_config(tmp_path, backend.url, page.url)
        monitor = Monitor(parse_config(text, environ={}), clock=clock, run_blocking=run_inline)
        await monitor.start()
        try:
            monitor.heartbeats.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
            await _step_until(
                clock, lambda: bool(backend.received("/admin/trigger-poll")), steps=20
            )
            # The backend's trigger-poll makes the poller run: it pings again.
            monitor.heartbeats.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
            firing = [a for a in monitor.rules.active_alerts() if a.state.value == "firing"]
            assert firing, "the alert should have been firing when the action ran"
            # Well past verify_after, the poller pinging every minute again: the
            # alert resolved and no page went out.
            for i in range(30):
                await clock.advance(10)
                if i % 6 == 5:
                    monitor.heartbeats.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
            await asyncio.sleep(0.3)
            assert [a for a in monitor.rules.active_alerts() if a.state.value == "firing"] == []
            assert page.received("/page") == []
            assert monitor.actions is not None
            [run] = monitor.actions.audit()
            assert run.outcome.value == "ok"
        finally:
            await monitor.stop()


async def test_reloaded_routing_reaches_the_changed_receivers(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from tests.helpers import Reply

    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n"
    )

    def text(receivers: str) -> str:
        return (
            f"data_dir: {tmp_path / 'data'}\n"
            "global: {evaluation_interval: 10s}\n"
            f"rule_files: [{tmp_path / 'rules.yml'}]\n"
            "alerting:\n  route: {receiver: broken, group_wait: 0s, group_interval: 30s,\n"
            "    routes: [{receiver: broken, continue: true}, {receiver: chat}]}\n"
            f"  receivers:\n{receivers}"
        )

    with Recorder(default=Reply(status=400, body=b"no")) as broken, Recorder() as chat:
        first = text(
            f"    - name: broken\n      webhook_configs: [{{url: '{chat.url}/old'}}]\n"
            f"    - name: chat\n      webhook_configs: [{{url: '{chat.url}/old'}}]\n"
        )
        monitor = Monitor(parse_config(first, environ={}), clock=clock)
        await monitor.start()
        try:
            old = monitor.dispatcher
            second = text(
                f"    - name: broken\n      webhook_configs: [{{url: '{broken.url}/hook'}}]\n"
                f"    - name: chat\n      webhook_configs: [{{url: '{chat.url}/chat'}}]\n"
            )
            await monitor.reload(parse_config(second, environ={}))
            # Reconfigured in place: one dispatcher, listening to silence changes once.
            assert monitor.dispatcher is old
            assert monitor.silences._listeners == [monitor.dispatcher._silences_changed]  # type: ignore[union-attr]

            def meta_alert_sent() -> bool:
                return any(
                    a["labels"]["alertname"] == "NotificationFailing"
                    for r in chat.received("/chat")
                    for a in r.json()["alerts"]
                )

            # The broken receiver's 400 raises NotificationFailing, which the new
            # dispatcher routes to chat: the outbox reports to the new one.
            await _step_until(clock, meta_alert_sent, steps=20)
            assert broken.received("/hook")
            assert not chat.received("/old")
        finally:
            await monitor.stop()


async def test_a_reload_adding_a_scrape_job_keeps_the_running_target(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from soulwatch.service import run_inline
    from tests.helpers import UvicornThread
    from tests.sources.support import Exposition, metrics_app

    (tmp_path / "rules.yml").write_text("groups: []\n")

    def text(port: int, jobs: list[str]) -> str:
        scrape = "".join(
            f"  - job_name: {name}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            for name in jobs
        )
        return (
            f"data_dir: {tmp_path / 'data'}\n"
            "global: {scrape_interval: 15s, scrape_timeout: 5s}\n"
            f"scrape_configs:\n{scrape}"
        )

    def up(monitor: Monitor, job: str) -> list[tuple[int, float]]:
        matchers = [Matcher.equal("__name__", "up"), Matcher.equal("job", job)]
        series = list(monitor.storage.select(matchers, 0, 2**62))
        return list(series[0]) if series else []

    with UvicornThread(metrics_app(metrics=Exposition("temperature 21.5\n"))) as app:
        monitor = Monitor(
            parse_config(text(app.port, ["api"]), environ={}), clock=clock, run_blocking=run_inline
        )
        await monitor.start()
        try:
            for _ in range(3):
                await clock.advance(15)
                await monitor.scrape.settled()
            await monitor.reload(parse_config(text(app.port, ["api", "worker"]), environ={}))
            for _ in range(3):
                await clock.advance(15)
                await monitor.scrape.settled()
            api = up(monitor, "api")
            assert len(api) == 6
            assert [v for _, v in api] == [1.0] * 6  # no staleness marker (NaN)
            times = [t for t, _ in api]
            assert all(b - a == 15_000 for a, b in itertools.pairwise(times))
            assert [v for _, v in up(monitor, "worker")] == [1.0] * 3
            assert monitor.health()["targets"] == {"total": 2, "up": 2}
        finally:
            await monitor.stop()


@pytest.mark.parametrize("mode", ["after_sources", "spread"])
async def test_rule_groups_evaluate_right_after_the_sources_that_feed_them(
    tmp_path: Path, clock: SimulatedClock, mode: str
) -> None:
    from soulwatch.sources.base import phase

    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: backend\n    rules:\n"
        '      - alert: BackendDown\n        expr: up{job="backend"} == 0\n'
    )
    config = parse_config(
        f"data_dir: {tmp_path / 'data'}\n"
        "global: {scrape_interval: 5s, scrape_timeout: 1s, evaluation_interval: 5s}\n"
        f"rule_evaluation_phase: {mode}\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        "scrape_configs:\n  - job_name: backend\n"
        "    static_configs: [{targets: ['127.0.0.1:9']}]\n",
        environ={},
    )
    monitor = Monitor(config, clock=clock)
    await monitor.start()
    try:
        for _ in range(4):
            await clock.advance(5)
        (group,) = monitor.rules.groups()
        assert group.last_evaluation is not None
        evaluated_at = round(group.last_evaluation % 5, 3)
    finally:
        await monitor.stop()
    target_phase = phase(monitor.scrape.targets[0].key, 5.0)
    if mode == "after_sources":
        # Half a second (a tenth of the interval) after the target's scrape.
        assert evaluated_at == round((target_phase + 0.5) % 5, 3)
    else:
        assert evaluated_at != round((target_phase + 0.5) % 5, 3)
