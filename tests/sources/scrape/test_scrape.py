"""Scraping real uvicorn targets on 127.0.0.1, driven by the simulated clock."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.sources.base import Health, first_run_delay
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager, StaticConfig
from soulwatch.sources.scrape.config import RelabelConfig
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, is_stale_nan
from tests.helpers import UvicornThread, free_port
from tests.sources.support import (
    OPENMETRICS,
    Exposition,
    eventually,
    metrics_app,
    only,
    samples_of,
)

BODY = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="get",code="200"} 10
http_requests_total{method="post",code="500"} 2
# TYPE temperature gauge
temperature 21.5
"""


@pytest.fixture
def expo() -> Exposition:
    return Exposition(BODY)


@pytest.fixture
def server(expo: Exposition) -> Iterator[UvicornThread]:
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        yield srv


def job(port: int, **kwargs: object) -> ScrapeConfig:
    cfg = ScrapeConfig.model_validate(
        {
            "job_name": "api",
            "scrape_interval": "15s",
            "scrape_timeout": "2s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"env": "test"}}],
            **kwargs,
        }
    )
    return cfg.resolved()


async def tick(clock: SimulatedClock, manager: ScrapeManager, seconds: float = 15) -> None:
    await clock.advance(seconds)
    await manager.settled()


async def test_samples_are_stored_with_target_labels_and_scrape_time(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job(server.port)], storage, clock=clock)
    target = manager.targets[0]
    first = clock.time() + first_run_delay(target.key, 15, clock.time())
    manager.start()
    try:
        await tick(clock, manager)
        await tick(clock, manager)
    finally:
        await manager.stop()
    t1, t2 = int(first * 1000), int(first * 1000) + 15_000
    instance = f"127.0.0.1:{server.port}"
    base = {"job": "api", "instance": instance, "env": "test"}
    got = samples_of(storage, "http_requests_total")
    assert got[Labels.of(base, __name__="http_requests_total", method="get", code="200")][:2] == [
        (t1, 10.0),
        (t2, 10.0),
    ]
    assert only(storage, "temperature", **base)[:2] == [(t1, 21.5), (t2, 21.5)]
    assert only(storage, "up", **base)[:2] == [(t1, 1.0), (t2, 1.0)]
    assert only(storage, "scrape_samples_scraped", **base)[:2] == [(t1, 3.0), (t2, 3.0)]
    assert only(storage, "scrape_samples_post_metric_relabeling", **base)[0] == (t1, 3.0)
    # every series is new on the first scrape, none on the second
    assert only(storage, "scrape_series_added", **base)[:2] == [(t1, 3.0), (t2, 0.0)]
    assert only(storage, "scrape_duration_seconds", **base)[0][0] == t1
    assert target.status.health is Health.UP
    assert target.status.last_error == ""


async def test_vanished_series_get_a_staleness_marker(
    clock: SimulatedClock, server: UvicornThread, expo: Exposition
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job(server.port)], storage, clock=clock)
    manager.start()
    try:
        await tick(clock, manager)
        expo.set("temperature 22\n")
        await tick(clock, manager)
        await tick(clock, manager)
    finally:
        await manager.stop()
    series = samples_of(storage, "http_requests_total", method="get")
    (values,) = series.values()
    assert values[0][1] == 10.0
    assert is_stale_nan(values[1][1]), "the vanished series is marked stale at the next scrape"
    assert len(values) == 2, "nothing more after the marker"
    temps = only(storage, "temperature")
    assert [v for _, v in temps[:3]] == [21.5, 22.0, 22.0]


async def test_stopped_target_is_down_with_error_and_its_series_go_stale(
    clock: SimulatedClock, expo: Exposition
) -> None:
    storage = MemoryStorage()
    srv = UvicornThread(metrics_app(metrics=expo)).start()
    manager = ScrapeManager([job(srv.port)], storage, clock=clock)
    manager.start()
    try:
        await tick(clock, manager)
        srv.stop()
        await tick(clock, manager)
    finally:
        srv.stop()
        await manager.stop()
    ups = only(storage, "up")
    assert [v for _, v in ups[:2]] == [1.0, 0.0]
    t_down = ups[1][0]
    temps = only(storage, "temperature")
    assert temps[1][0] == t_down
    assert is_stale_nan(temps[1][1])
    # the report series of a failed scrape are still written, with zero samples
    assert only(storage, "scrape_samples_scraped")[1] == (t_down, 0.0)
    status = manager.targets[0].status
    assert status.health is Health.DOWN
    assert "ConnectError" in status.last_error


async def test_slow_target_times_out_without_delaying_a_healthy_one(
    clock: SimulatedClock, expo: Exposition
) -> None:
    slow = Exposition("slow_metric 1\n")
    slow.delay = 5.0
    with UvicornThread(metrics_app(metrics=expo, slow=slow)) as srv:
        fast_job = job(srv.port)
        slow_job = job(srv.port, job_name="slow", metrics_path="/slow", scrape_timeout="1s")
        storage = MemoryStorage()
        manager = ScrapeManager([fast_job, slow_job], storage, clock=clock)
        fast, slow_target = manager.targets
        manager.start()
        try:
            await clock.advance(15)
            # the healthy target finishes while the slow one is still waiting for its answer
            await eventually(lambda: fast.status.runs == 1, what="the fast scrape")
            assert slow_target.status.runs == 0
            await manager.settled()
        finally:
            slow.delay = 0
            await manager.stop()
    assert slow_target.status.health is Health.DOWN
    assert slow_target.status.last_error == "scrape timed out after 1s"
    assert only(storage, "up", job="slow")[0][1] == 0.0
    assert only(storage, "up", job="api")[0][1] == 1.0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("ok 1\nbroken{a=1} 2\n", "line 2, column 10: expected '\"' to open a label value"),
        ("ok 1\nok2 notanumber\n", "line 2, column 5: invalid value 'notanumber'"),
        (b'ok 1\nok2{a="\xff"} 1\n', "line 2, column 8: invalid UTF-8"),
    ],
)
async def test_garbage_target_is_down_with_the_line_of_the_error(
    clock: SimulatedClock, body: str | bytes, error: str
) -> None:
    expo = Exposition(BODY)
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        manager = ScrapeManager([job(srv.port)], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
            expo.set(body)
            await tick(clock, manager)
            error_seen = manager.targets[0].status.last_error
            expo.set(BODY + "ok 1\n")  # `ok` was also read before the error, then rolled back
            await tick(clock, manager)
        finally:
            await manager.stop()
    assert error_seen == error
    assert [v for _, v in only(storage, "up")[:3]] == [1.0, 0.0, 1.0]
    # nothing of the garbage scrape is stored, and the good series are marked stale
    assert only(storage, "ok")[0] == (only(storage, "up")[2][0], 1.0)
    temps = only(storage, "temperature")
    assert is_stale_nan(temps[1][1])
    assert temps[2][1] == 21.5, "and come back when the target recovers"
    assert manager.targets[0].status.duplicates_dropped == 0


async def test_non_2xx_marks_the_target_down(clock: SimulatedClock) -> None:
    expo = Exposition("x 1\n")
    expo.status = 503
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        manager = ScrapeManager([job(srv.port)], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
        finally:
            await manager.stop()
    assert (
        manager.targets[0].status.last_error
        == "server returned HTTP status 503 Service Unavailable"
    )
    assert only(storage, "up")[0][1] == 0.0
    assert samples_of(storage, "x") == {}


async def test_body_over_the_limit_is_cut_and_fails_the_scrape(clock: SimulatedClock) -> None:
    big = "".join(f'big_series{{i="{i}"}} {i}\n' for i in range(200_000))  # ~5 MB
    expo = Exposition(big)
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        manager = ScrapeManager([job(srv.port, body_size_limit="1MB")], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
        finally:
            await manager.stop()
    assert manager.targets[0].status.last_error == (
        "body size limit exceeded (" + str(len(big)) + " > 1048576 bytes)"
    )
    assert only(storage, "up")[0][1] == 0.0
    assert samples_of(storage, "big_series") == {}


async def test_sample_limit_fails_the_scrape_like_prometheus(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job(server.port, sample_limit=2)], storage, clock=clock)
    manager.start()
    try:
        await tick(clock, manager)
    finally:
        await manager.stop()
    assert manager.targets[0].status.last_error == "sample limit exceeded (limit 2)"
    assert only(storage, "up")[0][1] == 0.0
    assert samples_of(storage, "temperature") == {}
    # as Prometheus reports it: the whole exposition counted, none of it kept
    assert only(storage, "scrape_samples_scraped")[0][1] == 3.0
    assert only(storage, "scrape_samples_post_metric_relabeling")[0][1] == 3.0


async def test_honor_labels_and_exported_prefix(clock: SimulatedClock) -> None:
    expo = Exposition('pushed{job="batch",instance="worker-1"} 1\n')
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        plain = job(srv.port)
        honor = job(srv.port, job_name="honor", honor_labels=True)
        manager = ScrapeManager([plain, honor], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
        finally:
            await manager.stop()
    instance = f"127.0.0.1:{srv.port}"
    labels = set(samples_of(storage, "pushed"))
    assert labels == {
        Labels.of(
            __name__="pushed",
            job="api",
            instance=instance,
            env="test",
            exported_job="batch",
            exported_instance="worker-1",
        ),
        Labels.of(__name__="pushed", job="batch", instance="worker-1", env="test"),
    }
    # the report series always carry the target's own labels
    assert set(samples_of(storage, "up")) == {
        Labels.of(__name__="up", job="api", instance=instance, env="test"),
        Labels.of(__name__="up", job="honor", instance=instance, env="test"),
    }


async def test_metric_relabel_configs_and_post_relabel_count(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    relabel = [
        RelabelConfig(source_labels=["code"], regex="5..", action="drop"),
        RelabelConfig(source_labels=["method"], target_label="verb", replacement="${1}!"),
        RelabelConfig(regex="method", action="labeldrop"),
    ]
    cfg = job(server.port).model_copy(update={"metric_relabel_configs": relabel})
    manager = ScrapeManager([cfg], storage, clock=clock)
    manager.start()
    try:
        await tick(clock, manager)
    finally:
        await manager.stop()
    (labels,) = samples_of(storage, "http_requests_total")
    assert labels.get("verb") == "get!"
    assert labels.get("method") == ""
    assert only(storage, "scrape_samples_scraped")[0][1] == 3.0
    assert only(storage, "scrape_samples_post_metric_relabeling")[0][1] == 2.0


async def test_openmetrics_timestamps_duplicates_nan_and_out_of_order(
    clock: SimulatedClock,
) -> None:
    t0 = clock.time()
    body = (
        "# TYPE events counter\n"
        f"events_total 5 {t0 - 10:.3f}\n"
        "events_total 6\n"  # a duplicate series in one exposition: the first sample wins
        "special NaN\n"
        "plus +Inf\n"
        "minus -Inf\n"
        "# EOF\n"
    )
    expo = Exposition(body, OPENMETRICS)
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        manager = ScrapeManager([job(srv.port)], storage, clock=clock)
        target = manager.targets[0]
        manager.start()
        try:
            await tick(clock, manager)
            expo.set(body.replace(f"{t0 - 10:.3f}", f"{t0 - 20:.3f}"))  # goes back in time
            await tick(clock, manager)
        finally:
            await manager.stop()
    assert "openmetrics" in expo.requests[0]["accept"].split(",")[0]
    assert only(storage, "events_total") == [(round((t0 - 10) * 1000), 5.0)]
    assert target.status.duplicates_dropped == 2
    assert target.status.out_of_order_dropped == 1
    assert target.status.health is Health.UP
    special = only(storage, "special")
    assert math.isnan(special[0][1])
    assert not is_stale_nan(special[0][1])
    assert only(storage, "plus")[0][1] == math.inf
    assert only(storage, "minus")[0][1] == -math.inf


async def test_targets_spread_over_the_interval(clock: SimulatedClock) -> None:
    cfg = ScrapeConfig(
        job_name="many",
        scrape_interval=60,
        scrape_timeout=10,
        static_configs=[StaticConfig(targets=[f"127.0.0.1:{p}" for p in range(20000, 20020)])],
    )
    manager = ScrapeManager([cfg], MemoryStorage(), clock=clock)
    delays = [first_run_delay(t.key, 60, clock.time()) for t in manager.targets]
    again = [first_run_delay(t.key, 60, clock.time()) for t in manager.targets]
    await manager.stop()
    assert delays == again, "offsets are deterministic per target"
    assert all(0 <= d <= 60 for d in delays)
    assert max(delays) - min(delays) > 30, "and spread over the interval"
    assert free_port()  # the port helper works (targets above are never contacted)


async def test_a_100_mib_streamed_body_is_cut_at_the_limit_not_read(clock: SimulatedClock) -> None:
    expo = Exposition()
    expo.stream_mib = 100
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        manager = ScrapeManager([job(srv.port, body_size_limit="2MB")], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
            sent_when_cut = expo.chunks_sent
        finally:
            await manager.stop()
    assert manager.targets[0].status.last_error == (
        "body size limit exceeded (more than 2097152 bytes)"
    )
    assert only(storage, "up")[0][1] == 0.0
    assert samples_of(storage, "filler_metric") == {}
    assert sent_when_cut < 20, f"the scrape gave up after {sent_when_cut} MiB, not 100"


async def test_a_removed_target_has_every_series_marked_stale(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job(server.port)], storage, clock=clock)
    target = manager.targets[0]
    second = clock.time() + first_run_delay(target.key, 15, clock.time()) + 15
    manager.start()
    try:
        await tick(clock, manager)
    finally:
        # Stop between the first scrape and the second (the offset depends on the port).
        await clock.advance((second - clock.time()) / 2)
        await manager.stop()
    for name in ("temperature", "up", "scrape_duration_seconds", "scrape_series_added"):
        values = only(storage, name)
        assert len(values) == 2
        assert is_stale_nan(values[-1][1]), name


async def test_auth_headers_params_and_honor_timestamps_false(clock: SimulatedClock) -> None:
    expo = Exposition("with_ts 1 1600000000000\n")
    with UvicornThread(metrics_app(metrics=expo)) as srv:
        storage = MemoryStorage()
        cfg = job(
            srv.port,
            authorization={"credentials": "s3cret"},
            headers={"X-Tenant": "soulcaster"},
            params={"format": ["prometheus"]},
            honor_timestamps=False,
        )
        manager = ScrapeManager([cfg], storage, clock=clock)
        manager.start()
        try:
            await tick(clock, manager)
        finally:
            await manager.stop()
    sent = expo.requests[0]
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["x-tenant"] == "soulcaster"
    assert sent["x-prometheus-scrape-timeout-seconds"] == "2"
    assert manager.targets[0].url.endswith("/metrics?format=prometheus")
    (sample,) = only(storage, "with_ts")[:1]
    assert sample[0] == only(storage, "up")[0][0], "the exposition's timestamp was ignored"


async def test_label_limit_fails_the_scrape(clock: SimulatedClock, server: UvicornThread) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job(server.port, label_limit=4)], storage, clock=clock)
    manager.start()
    try:
        await tick(clock, manager)
    finally:
        await manager.stop()
    # __name__, job, instance, env, method, code: 6 labels
    assert manager.targets[0].status.last_error == "label_limit exceeded at line 3: 6 > 4"
    assert only(storage, "up")[0][1] == 0.0


async def test_the_same_target_listed_twice_is_scraped_once(clock: SimulatedClock) -> None:
    cfg = ScrapeConfig.model_validate(
        {
            "job_name": "dup",
            "static_configs": [
                {"targets": ["127.0.0.1:1", "127.0.0.1:1"]},
                {"targets": ["127.0.0.1:1"]},
            ],
        }
    ).resolved()
    manager = ScrapeManager([cfg], MemoryStorage(), clock=clock)
    await manager.stop()
    assert [t.url for t in manager.targets] == ["http://127.0.0.1:1/metrics"]
