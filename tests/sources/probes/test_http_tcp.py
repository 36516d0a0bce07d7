"""HTTP and TCP probes against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from soulwatch.clock import SimulatedClock
from soulwatch.sources.base import Health
from soulwatch.sources.probes import ProbeConfig, ProbeManager, load_probes_config
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import is_stale_nan
from tests.helpers import Recorder, UvicornThread, free_port, need_binary
from tests.sources.support import eventually, make_certificate, only, samples_of


def _app() -> Starlette:
    state = {"healthy": True}

    async def health(request: Request) -> Response:
        if not state["healthy"]:
            return JSONResponse({"status": "degraded"}, status_code=503)
        return JSONResponse({"status": "ok", "checks": {"redis": "ok"}})

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/health", status_code=302)

    async def text(request: Request) -> Response:
        return PlainTextResponse("all systems nominal, version 1.2.3")

    app = Starlette(
        routes=[Route("/health", health), Route("/old", redirect), Route("/text", text)]
    )
    app.state.flags = state
    return app


@pytest.fixture
def site() -> Iterator[UvicornThread]:
    with UvicornThread(_app()) as srv:
        yield srv


def http(name: str, url: str, **http_cfg: object) -> ProbeConfig:
    return ProbeConfig.model_validate(
        {
            "job_name": name,
            "prober": "http",
            "targets": [url],
            "interval": "15s",
            "timeout": "2s",
            "http": http_cfg,
        }
    )


async def run(clock: SimulatedClock, manager: ProbeManager, times: int = 1) -> None:
    manager.start()
    try:
        for _ in range(times):
            await clock.advance(15)
            await manager.settled()
    finally:
        await manager.stop()


async def test_http_probe_success_metrics_and_labels(
    clock: SimulatedClock, site: UvicornThread
) -> None:
    storage = MemoryStorage()
    url = f"{site.url}/old"
    cfg = http("backend-health", url, valid_status_codes=[200], json_fields={"checks.redis": "ok"})
    manager = ProbeManager([cfg], storage, clock=clock, env={})
    await run(clock, manager)
    labels = {"job": "backend-health", "instance": url}
    assert only(storage, "probe_success", **labels)[0][1] == 1.0
    assert only(storage, "probe_http_status_code", **labels)[0][1] == 200.0
    assert only(storage, "probe_http_redirects", **labels)[0][1] == 1.0
    assert only(storage, "probe_http_ssl", **labels)[0][1] == 0.0
    assert only(storage, "probe_failed_due_to_json", **labels)[0][1] == 0.0
    assert only(storage, "probe_duration_seconds", **labels)[0][1] > 0
    phases = {
        lbls.get("phase"): values[0][1]
        for lbls, values in samples_of(storage, "probe_http_duration_seconds", **labels).items()
    }
    assert set(phases) == {"resolve", "connect", "tls", "processing", "transfer"}
    assert phases["connect"] > 0
    assert phases["processing"] > 0
    assert phases["tls"] == 0.0


@pytest.mark.parametrize(
    "case",
    [
        ("/health", {"json_fields": {"status": "healthy"}}, "JSON field 'status' is 'ok'", None),
        ("/text", {"fail_if_body_not_matches_regexp": ["version 2"]}, "did not match", "regex"),
        ("/text", {"fail_if_body_matches_regexp": ["nominal"]}, "body matched", "regex"),
        ("/health", {"valid_status_codes": [204]}, "invalid HTTP status 200", None),
        ("/old", {"follow_redirects": False}, "invalid HTTP status 302", None),
        ("/health", {"fail_if_not_ssl": True}, "final request was not over SSL", None),
    ],
)
async def test_http_probe_failure_conditions(
    clock: SimulatedClock, site: UvicornThread, case: tuple[str, dict[str, object], str, str | None]
) -> None:
    path, http_cfg, error, flag = case
    storage = MemoryStorage()
    manager = ProbeManager([http("h", site.url + path, **http_cfg)], storage, clock=clock, env={})
    await run(clock, manager)
    assert only(storage, "probe_success")[0][1] == 0.0
    assert error in manager.sources[0].status.last_error
    if flag == "regex":
        assert only(storage, "probe_failed_due_to_regex")[0][1] == 1.0


async def test_server_down_gives_status_code_zero_and_a_503_is_reported(
    clock: SimulatedClock,
) -> None:
    site = UvicornThread(_app()).start()
    storage = MemoryStorage()
    manager = ProbeManager([http("h", site.url + "/health")], storage, clock=clock, env={})
    manager.start()
    try:
        await clock.advance(15)
        await manager.settled()
        site.server.config.app.state.flags["healthy"] = False
        await clock.advance(15)
        await manager.settled()
        site.stop()
        await clock.advance(15)
        await manager.settled()
    finally:
        site.stop()
        await manager.stop()
    assert [v for _, v in only(storage, "probe_success")[:3]] == [1.0, 0.0, 0.0]
    assert [v for _, v in only(storage, "probe_http_status_code")[:3]] == [200.0, 503.0, 0.0]
    assert "ConnectError" in manager.sources[0].status.last_error
    # a metric that needs a response goes stale when there is none
    assert is_stale_nan(only(storage, "probe_http_content_length")[2][1])


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, float]:
    return make_certificate(tmp_path, need_binary("openssl"))


async def test_https_probe_reports_certificate_expiry(
    clock: SimulatedClock, certificate: tuple[Path, Path, float]
) -> None:
    cert, key, not_after = certificate
    with UvicornThread(_app(), ssl_certfile=str(cert), ssl_keyfile=str(key)) as srv:
        url = f"https://127.0.0.1:{srv.port}/health"
        storage = MemoryStorage()
        cfg = http("tls", url, tls_config={"ca_file": str(cert)}, fail_if_not_ssl=True)
        tcp = ProbeConfig(
            job_name="tls-tcp",
            prober="tcp",
            targets=[f"127.0.0.1:{srv.port}"],
            interval=15,
            timeout=2,
            tcp={"tls": True, "tls_config": {"ca_file": str(cert)}},
        )
        manager = ProbeManager([cfg, tcp], storage, clock=clock, env={})
        await run(clock, manager)
    assert manager.sources[0].status.last_error == ""
    assert only(storage, "probe_success", job="tls")[0][1] == 1.0
    assert only(storage, "probe_http_ssl")[0][1] == 1.0
    assert only(storage, "probe_ssl_earliest_cert_expiry", job="tls")[0][1] == not_after
    assert only(storage, "probe_ssl_earliest_cert_expiry", job="tls-tcp")[0][1] == not_after
    tls_phase = samples_of(storage, "probe_http_duration_seconds", phase="tls")
    assert next(iter(tls_phase.values()))[0][1] > 0


@pytest.fixture
async def hung_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_probe_times_out_and_blocks_no_other(
    clock: SimulatedClock, site: UvicornThread, hung_port: int
) -> None:
    storage = MemoryStorage()
    hung = http("hung", f"http://127.0.0.1:{hung_port}/").model_copy(update={"timeout": 1.0})
    fine = http("fine", site.url + "/health")
    manager = ProbeManager([hung, fine], storage, clock=clock, env={})
    hung_source, fine_source = manager.sources
    manager.start()
    try:
        await clock.advance(15)
        await eventually(lambda: fine_source.status.runs == 1, what="the healthy probe")
        assert hung_source.status.runs == 0, "the hung probe is still waiting"
        await manager.settled()
    finally:
        await manager.stop()
    assert hung_source.status.last_error == "probe timed out after 1s"
    assert only(storage, "probe_success", job="hung")[0][1] == 0.0
    assert only(storage, "probe_success", job="fine")[0][1] == 1.0


async def test_tcp_probe_open_and_closed_ports(clock: SimulatedClock, site: UvicornThread) -> None:
    text = f"""
probe_configs:
  - job_name: tcp-open
    prober: tcp
    interval: 10s
    timeout: 1s
    targets: ["127.0.0.1:{site.port}"]
  - job_name: tcp-closed
    prober: tcp
    interval: 10s
    timeout: 1s
    targets: ["127.0.0.1:{free_port()}"]
"""
    storage = MemoryStorage()
    manager = ProbeManager(load_probes_config(text).probe_configs, storage, clock=clock, env={})
    await run(clock, manager)
    assert only(storage, "probe_success", job="tcp-open")[0][1] == 1.0
    assert only(storage, "probe_success", job="tcp-closed")[0][1] == 0.0
    statuses = manager.statuses()
    assert statuses[f"tcp-open/127.0.0.1:{site.port}"].health is Health.UP
    closed = next(s for k, s in statuses.items() if k.startswith("tcp-closed"))
    assert "ConnectionRefusedError" in closed.last_error


async def test_http_probe_sends_method_headers_and_body(
    clock: SimulatedClock, recorder: Recorder
) -> None:
    storage = MemoryStorage()
    cfg = http(
        "post",
        recorder.url + "/hook",
        method="POST",
        headers={"X-Probe": "soulwatch"},
        body='{"ping": true}',
        valid_status_codes=[200],
    )
    manager = ProbeManager([cfg], storage, clock=clock, env={})
    await run(clock, manager)
    (request,) = recorder.received("/hook")
    assert request.method == "POST"
    assert request.headers["x-probe"] == "soulwatch"
    assert request.json() == {"ping": True}
    assert only(storage, "probe_success")[0][1] == 1.0
