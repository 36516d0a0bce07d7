"""``alerting.alertmanagers``: what is posted where, against a recording server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from soulwatch.alerting.alertmanagers import (
    BATCH_SIZE,
    AlertmanagerConfig,
    AlertmanagerSender,
    FanOutSink,
)
from soulwatch.alerts import Alert
from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.service import Monitor
from soulwatch.sources.scrape.config import RelabelConfig
from soulwatch.tsdb.model import Labels
from tests.helpers import Recorder, Reply


def _config(port: int, **extra: object) -> AlertmanagerConfig:
    return AlertmanagerConfig.model_validate(
        {"static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **extra}
    )


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _sent(sender: AlertmanagerSender, *alerts: Alert) -> None:
    await sender.send(alerts)
    await sender.flush()


async def test_firing_and_resolved_alerts_as_prometheus_posts_them(clock: SimulatedClock) -> None:
    with Recorder() as am:
        sender = AlertmanagerSender(
            [_config(am.port, path_prefix="/am", authorization={"credentials": "tok"})],
            clock=clock,
            external_labels={"site": "lab", "severity": "ignored"},
            alert_relabel_configs=[
                RelabelConfig(source_labels=["team"], regex="ops", action="drop"),
            ],
            valid_for=240.0,
        )
        now = clock.time()
        firing = Alert(
            Labels.of(alertname="Down", severity="page"), {"summary": "s"}, now - 30, None, "u"
        )
        resolved = Alert(Labels.of(alertname="Gone"), {}, now - 90, now - 5)
        dropped = Alert(Labels.of(alertname="Quiet", team="ops"), {}, now)
        await _sent(sender, firing, resolved, dropped)
        await sender.aclose()
        [request] = am.received("/am/api/v2/alerts")
    assert request.headers["authorization"] == "Bearer tok"
    posted = {a["labels"]["alertname"]: a for a in request.json()}
    assert set(posted) == {"Down", "Gone"}
    assert posted["Down"]["labels"] == {"alertname": "Down", "severity": "page", "site": "lab"}
    assert posted["Down"]["annotations"] == {"summary": "s"}
    assert posted["Down"]["generatorURL"] == "u"
    assert _seconds(posted["Down"]["startsAt"]) == pytest.approx(now - 30)
    assert _seconds(posted["Down"]["endsAt"]) == pytest.approx(now + 240)
    assert _seconds(posted["Gone"]["endsAt"]) == pytest.approx(now - 5)


async def test_batches_of_64_to_every_alertmanager_and_failures_counted(
    clock: SimulatedClock,
) -> None:
    registry = CollectorRegistry()
    with Recorder() as good, Recorder(default=Reply(status=500)) as bad:
        sender = AlertmanagerSender(
            [_config(good.port), _config(bad.port)], clock=clock, registry=registry
        )
        alerts = [Alert(Labels.of(alertname="A", i=str(i)), {}, clock.time()) for i in range(100)]
        await _sent(sender, *alerts)
        await sender.aclose()
        sizes = [len(r.json()) for r in good.received("/api/v2/alerts")]
        assert len(bad.received("/api/v2/alerts")) == 2
    assert sizes == [BATCH_SIZE, 100 - BATCH_SIZE]
    sent = registry.get_sample_value(
        "soulwatch_alertmanager_notifications_sent_total",
        {"alertmanager": f"http://127.0.0.1:{good.port}/api/v2/alerts"},
    )
    errors = registry.get_sample_value(
        "soulwatch_alertmanager_notifications_errors_total",
        {"alertmanager": f"http://127.0.0.1:{bad.port}/api/v2/alerts"},
    )
    assert (sent, errors) == (100, 100)


def test_relabel_configs_rewrite_and_drop_targets(clock: SimulatedClock) -> None:
    config = AlertmanagerConfig.model_validate(
        {
            "static_configs": [{"targets": ["a:9093", "b:9093"], "labels": {"zone": "x"}}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "regex": "b:.*", "action": "drop"},
                {"target_label": "__alerts_path__", "replacement": "/custom/api/v2/alerts"},
            ],
        }
    )
    sender = AlertmanagerSender([config], clock=clock)
    assert sender.urls == ["http://a:9093/custom/api/v2/alerts"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dns_sd_configs": [{"names": ["am"]}]}, "dns_sd_configs is not supported"),
        ({"api_version": "v1"}, "Input should be 'v2'"),
        ({"proxy_url": "http://p"}, "Extra inputs are not permitted"),
        (
            {"basic_auth": {"username": "u"}, "bearer_token": "t"},
            "at most one of basic_auth, authorization or bearer_token",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertmanagerConfig.model_validate(entry)


async def test_no_alertmanager_configured_sends_nothing(clock: SimulatedClock) -> None:
    sender = AlertmanagerSender([], clock=clock)
    await sender.send([Alert(Labels.of(alertname="A"), {}, clock.time())])
    assert sender.queued == 0


async def test_fan_out_reaches_every_sink_even_when_one_fails() -> None:
    got: list[int] = []

    class Broken:
        async def send(self, alerts: object) -> None:
            raise RuntimeError("down")

    class Keeps:
        async def send(self, alerts: list[Alert]) -> None:
            got.append(len(alerts))

    with pytest.raises(RuntimeError, match="down"):
        await FanOutSink(Broken(), Keeps(), None).send([Alert(Labels.of(alertname="A"))])
    assert got == [1]


async def _eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_reload_starts_sending_to_added_alertmanagers(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    interval: 10s\n    rules:\n"
        "      - alert: Always\n        expr: vector(1)\n"
    )
    base = f"data_dir: {tmp_path / 'data'}\nrule_files: [{tmp_path / 'rules.yml'}]\n"
    with Recorder() as am:
        monitor = Monitor(parse_config(base, environ={}), clock=clock)
        await monitor.start()
        try:
            await clock.advance(20)
            assert am.received() == []
            added = (
                base + "global: {external_labels: {site: lab}}\n"
                "alerting:\n  alertmanagers:\n"
                f"    - static_configs: [{{targets: ['127.0.0.1:{am.port}']}}]\n"
            )
            await monitor.reload(parse_config(added, environ={}))
            # The rule manager re-sends every minute: the alert reaches the added Alertmanager.
            for _ in range(8):
                await clock.advance(10)
                if am.received("/api/v2/alerts"):
                    break
            await _eventually(lambda: am.received("/api/v2/alerts"))
            [alert] = am.received("/api/v2/alerts")[0].json()
            assert alert["labels"] == {"alertname": "Always", "site": "lab"}
            assert monitor.am_sender.urls == [f"http://127.0.0.1:{am.port}/api/v2/alerts"]
        finally:
            await monitor.stop()
