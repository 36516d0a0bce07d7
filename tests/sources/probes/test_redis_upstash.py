"""The Redis probe against a real redis-server; Upstash probes against a local look-alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import ConfigError
from soulwatch.sources.probes import ProbeConfig, ProbeManager, load_probes_config
from soulwatch.sources.probes.redis import redacted
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import is_stale_nan
from tests.helpers import (
    RecordedRequest,
    Recorder,
    RedisServer,
    Reply,
    free_port,
    need_binary,
    port_open,
    started,
)
from tests.sources.support import make_certificate, only, samples_of

TOKEN = "upstash-secret-token"


async def step(clock: SimulatedClock, manager: ProbeManager) -> None:
    await clock.advance(10)
    await manager.settled()


async def test_redis_probe_follows_a_server_stopped_and_restarted(
    clock: SimulatedClock, redis_server: RedisServer
) -> None:
    storage = MemoryStorage()
    cfg = ProbeConfig(job_name="redis", prober="redis", url_env="REDIS_URL", interval=10, timeout=2)
    manager = ProbeManager([cfg], storage, clock=clock, env={"REDIS_URL": redis_server.url})
    labels = {"job": "redis", "instance": redis_server.url}
    manager.start()
    try:
        await step(clock, manager)
        redis_server.stop()
        await step(clock, manager)
        await step(clock, manager)
        redis_server.start()
        await step(clock, manager)
    finally:
        await manager.stop()
    assert [v for _, v in only(storage, "redis_up", **labels)[:4]] == [1.0, 0.0, 0.0, 1.0]
    errors = [v for _, v in only(storage, "redis_connection_errors_total", **labels)[:4]]
    assert errors == [0.0, 1.0, 2.0, 2.0]
    memory = only(storage, "redis_used_memory_bytes", **labels)
    assert memory[0][1] > 100_000
    assert is_stale_nan(memory[1][1]), "no INFO while down: the series is marked stale"
    assert memory[2][1] > 100_000, "and comes back with the server"
    assert only(storage, "redis_maxmemory_bytes", **labels)[0][1] == 0.0
    assert only(storage, "redis_connected_clients", **labels)[0][1] >= 1.0
    assert only(storage, "redis_ping_duration_seconds", **labels)[0][1] > 0


def test_redis_passwords_never_reach_labels() -> None:
    assert redacted("rediss://default:hunter2@eu1.upstash.io:6379") == (
        "rediss://default:***@eu1.upstash.io:6379"
    )
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def _upstash(request: RecordedRequest) -> Reply:
    """Answers like Upstash's Redis REST and Vector APIs."""
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return Reply(401, b'{"error":"Unauthorized"}', {"Content-Type": "application/json"})
    if request.method == "POST" and request.path == "/" and request.json() == ["PING"]:
        return Reply(200, b'{"result":"PONG"}', {"Content-Type": "application/json"})
    if request.method == "GET" and request.path == "/info":
        info = {
            "vectorCount": 1234,
            "pendingVectorCount": 5,
            "indexSize": 987654,
            "dimension": 1536,
            "similarityFunction": "COSINE",
        }
        return Reply(
            200, json.dumps({"result": info}).encode(), {"Content-Type": "application/json"}
        )
    return Reply(404, b'{"error":"not found"}')


PROBES = """
probe_configs:
  - job_name: upstash-redis
    prober: upstash
    url_env: UPSTASH_REDIS_REST_URL
    upstash: {token_env: UPSTASH_REDIS_REST_TOKEN}
    interval: 10s
    timeout: 2s
  - job_name: upstash-vector
    prober: upstash_vector
    url_env: UPSTASH_VECTOR_REST_URL
    upstash: {token_env: UPSTASH_VECTOR_REST_TOKEN}
    interval: 10s
    timeout: 2s
"""


async def test_upstash_rest_and_vector_probes(clock: SimulatedClock) -> None:
    with Recorder(handler=_upstash) as upstash:
        env = {
            "UPSTASH_REDIS_REST_URL": upstash.url,
            "UPSTASH_REDIS_REST_TOKEN": TOKEN,
            "UPSTASH_VECTOR_REST_URL": upstash.url,
            "UPSTASH_VECTOR_REST_TOKEN": TOKEN,
        }
        storage = MemoryStorage()
        manager = ProbeManager(
            load_probes_config(PROBES).probe_configs, storage, clock=clock, env=env
        )
        manager.start()
        try:
            await step(clock, manager)
        finally:
            await manager.stop()
        received = upstash.received()
    assert {(r.method, r.path) for r in received} == {("POST", "/"), ("GET", "/info")}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in received)
    assert only(storage, "probe_success", job="upstash-redis")[0][1] == 1.0
    assert only(storage, "redis_up", job="upstash-redis", instance=upstash.url)[0][1] == 1.0
    assert only(storage, "redis_ping_duration_seconds")[0][1] > 0
    assert only(storage, "upstash_vector_count", job="upstash-vector")[0][1] == 1234.0
    assert only(storage, "upstash_vector_dimension")[0][1] == 1536.0
    assert only(storage, "upstash_vector_pending_count")[0][1] == 5.0
    assert only(storage, "upstash_vector_up")[0][1] == 1.0
    every_label_value = {v for labels in samples_of(storage, "probe_success") for _, v in labels}
    assert TOKEN not in "".join(every_label_value)


async def test_upstash_with_a_wrong_token_is_down_with_the_reason(clock: SimulatedClock) -> None:
    with Recorder(handler=_upstash) as upstash:
        env = {
            "UPSTASH_REDIS_REST_URL": upstash.url,
            "UPSTASH_REDIS_REST_TOKEN": "wrong",
            "UPSTASH_VECTOR_REST_URL": upstash.url,
            "UPSTASH_VECTOR_REST_TOKEN": "wrong",
        }
        storage = MemoryStorage()
        manager = ProbeManager(
            load_probes_config(PROBES).probe_configs, storage, clock=clock, env=env
        )
        manager.start()
        try:
            await step(clock, manager)
        finally:
            await manager.stop()
    assert only(storage, "redis_up")[0][1] == 0.0
    assert only(storage, "upstash_vector_up")[0][1] == 0.0
    assert samples_of(storage, "upstash_vector_count") == {}
    errors = {s.last_error for s in manager.statuses().values()}
    assert errors == {"HTTP 401: Unauthorized"}


def test_probe_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key 'valid_status_code'") as err:
        load_probes_config(
            "probe_configs:\n  - job_name: x\n    prober: http\n    targets: [http://a]\n"
            "    http:\n      valid_status_code: [200]\n",
            file="probes.yml",
        )
    assert (err.value.file, err.value.line) == ("probes.yml", 6)
    with pytest.raises(ConfigError, match="greater than interval"):
        load_probes_config(
            "probe_configs:\n  - {job_name: x, prober: tcp, targets: ['a:1'],\n"
            "     interval: 5s, timeout: 9s}\n"
        )
    cfg = ProbeConfig(job_name="r", prober="redis", url_env="REDIS_URL")
    with pytest.raises(ConfigError, match="environment variable REDIS_URL is not set"):
        ProbeManager([cfg], MemoryStorage(), clock=SimulatedClock(), env={})


def test_raw_probe_entries_from_soulwatch_yaml() -> None:
    from soulwatch.sources.probes import resolve_probe_configs

    (cfg,) = resolve_probe_configs([{"job_name": "h", "prober": "http", "targets": ["http://a"]}])
    assert (cfg.interval, cfg.timeout) == (30.0, 10.0)
    with pytest.raises(ConfigError, match=r"unknown key 'intervall' at probes\.0\.intervall"):
        resolve_probe_configs(
            [{"job_name": "h", "prober": "tcp", "targets": ["a:1"], "intervall": 1}]
        )


async def test_redis_probe_over_tls_with_a_password(clock: SimulatedClock, tmp_path: Path) -> None:
    binary = need_binary("redis-server")
    cert, key, _ = make_certificate(tmp_path, need_binary("openssl"))
    port = free_port()
    argv = [
        *(binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
        *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
        *("--requirepass", "hunter2", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
    ]
    with started(argv, ready=lambda: port_open(port)):
        storage = MemoryStorage()
        cfg = ProbeConfig(
            job_name="redis-tls",
            prober="redis",
            targets=[f"rediss://:hunter2@127.0.0.1:{port}/0"],
            interval=10,
            timeout=3,
            redis={"tls_config": {"ca_file": str(cert)}},
        )
        manager = ProbeManager([cfg], storage, clock=clock, env={})
        manager.start()
        try:
            await step(clock, manager)
        finally:
            await manager.stop()
    assert manager.sources[0].status.last_error == ""
    instance = f"rediss://127.0.0.1:{port}/0"
    assert only(storage, "redis_up", instance=instance)[0][1] == 1.0
    assert only(storage, "redis_used_memory_bytes", instance=instance)[0][1] > 0
    assert all("hunter2" not in v for labels in samples_of(storage, "redis_up") for _, v in labels)
