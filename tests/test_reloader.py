"""Reloading a running monitor: what did not change keeps running, what was removed ends now."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.service import Monitor
from soulwatch.tsdb.model import Matcher
from tests.helpers import Recorder, UvicornThread
from tests.sources.support import Exposition, metrics_app

KEEP = (
    "  - name: keep\n    interval: 10s\n    rules:\n"
    "      - record: keep:up\n        expr: sum(up)\n"
    "      - alert: KeepPending\n        expr: vector(1)\n        for: 10m\n"
)


def _group(name: str, record: str, value: str) -> str:
    return (
        f"  - name: {name}\n    interval: 10s\n    rules:\n"
        f"      - record: {record}\n        expr: vector({value})\n"
    )


CHANGE = _group("change", "change:value", "{v}")
REMOVE = _group("remove", "remove:two", "2")
ADD = _group("add", "add:four", "4")


def _config(tmp_path: Path, port: int, jobs: dict[str, str], groups: str) -> str:
    # Inserted above the others, so the kept group moves down its file.
    (tmp_path / "rules.yml").write_text("groups:\n" + groups)
    scrape = "".join(
        f"  - job_name: {name}\n    scrape_interval: {every}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        for name, every in jobs.items()
    )
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "global: {scrape_interval: 15s, scrape_timeout: 5s, evaluation_interval: 10s}\n"
        "rule_evaluation_phase: spread\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        f"scrape_configs:\n{scrape}"
    )


def _now(monitor: Monitor, query: str) -> list[float]:
    """What a query answers at the monitor's present instant."""
    t_ms = round(monitor.clock.time() * 1000)
    return [s.value for s in monitor.parts.engine.instant(query, t_ms).value]  # type: ignore[union-attr]


async def _advance(monitor: Monitor, clock: SimulatedClock, seconds: int) -> None:
    for _ in range(seconds // 5):
        await clock.advance(5)
        await monitor.scrape.settled()


async def test_a_reload_keeps_unchanged_parts_and_ends_removed_ones_at_once(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    with UvicornThread(metrics_app(metrics=Exposition("temperature 21.5\n"))) as app:
        first = _config(
            tmp_path,
            app.port,
            {"api": "15s", "old": "15s", "chg": "15s"},
            KEEP + CHANGE.format(v=1) + REMOVE,
        )
        monitor = Monitor(parse_config(first, environ={}), clock=clock)
        await monitor.start()
        try:
            await _advance(monitor, clock, 60)
            assert _now(monitor, "remove:two") == [2.0]
            assert _now(monitor, 'up{job="old"}') == [1.0]
            (keep,) = [g for g in monitor.rules.groups() if g.name == "keep"]
            (pending,) = monitor.rules.active_alerts()
            assert keep.last_evaluation is not None

            second = _config(
                tmp_path,
                app.port,
                {"api": "15s", "chg": "10s", "new": "15s"},
                ADD + KEEP + CHANGE.format(v=3),
            )
            await monitor.reload(parse_config(second, environ={}))

            # Removed: the rule's series and the job's targets end now, not 5 minutes later.
            assert _now(monitor, "remove:two") == []
            assert _now(monitor, 'up{job="old"}') == []
            # The unchanged group runs on: same state, same schedule.
            (kept,) = [g for g in monitor.rules.groups() if g.name == "keep"]
            assert kept.last_evaluation == keep.last_evaluation
            (still,) = monitor.rules.active_alerts()
            assert still.active_at == pending.active_at

            await _advance(monitor, clock, 30)
            assert _now(monitor, "remove:two") == []
            assert _now(monitor, "change:value") == [3.0]
            assert _now(monitor, "add:four") == [4.0]
            (kept,) = [g for g in monitor.rules.groups() if g.name == "keep"]
            assert kept.last_evaluation is not None
            assert (kept.last_evaluation - keep.last_evaluation) % 10 == 0
            assert kept.last_evaluation > keep.last_evaluation

            # The kept scrape job was never interrupted: every 15 s, no staleness marker.
            matchers = [Matcher.equal("__name__", "up"), Matcher.equal("job", "api")]
            (api,) = monitor.storage.select(matchers, 0, 2**62)
            assert not any(math.isnan(v) for v in api.values)
            assert all(b - a == 15_000 for a, b in itertools.pairwise(api.timestamps))
            assert _now(monitor, 'up{job="new"}') == [1.0]
            assert _now(monitor, 'up{job="chg"}') == [1.0]
            assert monitor.health()["targets"] == {"total": 3, "up": 3}
        finally:
            await monitor.stop()


ROUTING_RULES = (
    "groups:\n  - name: alerts\n    interval: 10s\n    rules:\n"
    "      - alert: Keep\n        expr: vector(1)\n        labels: {team: keep}\n"
    # Joins the unchanged route's group minutes after the reload.
    "      - alert: KeepLate\n        expr: vector(1)\n        for: 4m\n"
    "        labels: {team: keep}\n"
    "      - alert: Change\n        expr: vector(1)\n        labels: {team: change}\n"
)


def _routing_config(tmp_path: Path, url: str, change_matcher: str, change_path: str) -> str:
    (tmp_path / "rules.yml").write_text(ROUTING_RULES)
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "global: {evaluation_interval: 10s}\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        "alerting:\n"
        "  route:\n    receiver: keep\n    group_by: [team]\n"
        "    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 4h\n"
        "    routes:\n"
        "      - {matchers: ['team=\"keep\"'], receiver: keep}\n"
        f"      - {{matchers: ['{change_matcher}'], receiver: change}}\n"
        "  receivers:\n"
        f"    - {{name: keep, webhook_configs: [{{url: '{url}/keep'}}]}}\n"
        f"    - {{name: change, webhook_configs: [{{url: '{url}{change_path}'}}]}}\n"
    )


def _sent(monitor: Monitor, receiver: str) -> list[tuple[float, list[str]]]:
    """When each notification to ``receiver`` was made, and the alerts it carried."""
    return [
        (row.created_at, sorted(a.labels.get("alertname") or "" for a in row.notification.alerts))
        for row in monitor.outbox.rows()
        if row.notification.receiver == receiver
    ]


async def test_a_routing_reload_keeps_unchanged_routes_groups_and_receivers(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    first = _routing_config(tmp_path, recorder.url, 'team="change"', "/change")
    monitor = Monitor(parse_config(first, environ={}), clock=clock)
    await monitor.start()
    try:
        for _ in range(12):
            await clock.advance(10)
            if _sent(monitor, "keep") and _sent(monitor, "change"):
                break
        ((notified, alerts),) = _sent(monitor, "keep")
        assert alerts == ["Keep"]
        assert len(_sent(monitor, "change")) == 1
        keep_notifier = monitor.outbox.notifiers["keep/webhook/0"]
        change_notifier = monitor.outbox.notifiers["change/webhook/0"]
        await clock.advance(60)

        # The second route changes (its matcher, so its groups are new) and so
        # does its receiver; the first route and its receiver do not.
        second = _routing_config(tmp_path, recorder.url, 'team=~"change|other"', "/changed")
        reloaded_at = clock.time()
        await monitor.reload(parse_config(second, environ={}))
        assert monitor.outbox.notifiers["keep/webhook/0"] is keep_notifier
        assert monitor.outbox.notifiers["change/webhook/0"] is not change_notifier

        for _ in range(60):
            await clock.advance(10)
            if len(_sent(monitor, "keep")) > 1:
                break
        # Keep was not notified again; KeepLate joined its group and went out at
        # the group's next group_interval tick, on the schedule from before the reload.
        first_sent, (later, alerts) = _sent(monitor, "keep")
        assert first_sent == (notified, ["Keep"])
        assert alerts == ["Keep", "KeepLate"]
        assert notified + 300 <= later < notified + 310
        # The changed route's group is new: as in Alertmanager, an alert that has
        # already waited out group_wait goes out at once, to the changed receiver.
        (_, (changed_at, alerts)) = _sent(monitor, "change")
        assert alerts == ["Change"]
        assert reloaded_at <= changed_at < reloaded_at + 10
        await _until(lambda: len(recorder.received("/changed")) == 1)
        assert len(recorder.received("/keep")) == 2
    finally:
        await monitor.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, bounded, for deliveries over real HTTP to arrive."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_receiver_keeps_its_notifier_until_its_secret_file_changes(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "hook.url").write_text(f"{recorder.url}/first\n")
    text = (
        f"data_dir: {tmp_path / 'data'}\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        "alerting:\n  route: {receiver: hook}\n"
        "  receivers:\n"
        f"    - {{name: hook, webhook_configs: [{{url_file: '{tmp_path / 'hook.url'}'}}]}}\n"
    )
    monitor = Monitor(parse_config(text, environ={}), clock=clock)
    await monitor.start()
    try:
        first = monitor.outbox.notifiers["hook/webhook/0"]
        await monitor.reload(parse_config(text, environ={}))
        assert monitor.outbox.notifiers["hook/webhook/0"] is first
        # The same config, a rotated secret: the reload reads it and builds anew.
        (tmp_path / "hook.url").write_text(f"{recorder.url}/second\n")
        await monitor.reload(parse_config(text, environ={}))
        assert monitor.outbox.notifiers["hook/webhook/0"] is not first
    finally:
        await monitor.stop()
