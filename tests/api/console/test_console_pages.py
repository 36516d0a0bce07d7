"""Console pages served in-process from a bare context: what a misconfiguration looks like."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from soulwatch.api.app import create_app
from soulwatch.api.context import ApiContext
from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig, load_config
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels


def _client(config: SoulwatchConfig, clock: SimulatedClock) -> httpx.AsyncClient:
    storage = MemoryStorage()
    app = storage.appender()
    for i in range(10):
        t_ms = round((clock.time() - 60 + i * 6) * 1000)
        app.append(Labels.of(__name__="up", job="api"), t_ms, 1)
    app.commit()
    ctx = ApiContext(
        storage=storage,
        engine=Engine(storage, clock=clock),
        clock=clock,
        auth=config.auth,
        config=config,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://console")


def _config(tmp_path: Path, listen: str, board: str) -> SoulwatchConfig:
    (tmp_path / "board.yml").write_text(textwrap.dedent(board))
    path = tmp_path / "soulwatch.yaml"
    path.write_text(f"listen: {listen}\nconsole: {{boards: [board.yml]}}\n")
    return load_config(path)


BOARD = """\
    name: api
    title: API
    rows:
      - title: api
        panels:
          - {title: up, expr: min(up), unit: bool, thresholds: {crit: 1, direction: below}}
          - {title: broken, expr: "sum(rate(up[5m])"}
    """


async def test_a_broken_panel_shows_its_parse_error_and_the_rest_still_works(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    async with _client(_config(tmp_path, "127.0.0.1:9797", BOARD), clock) as client:
        page = (await client.get("/")).text
    assert 'data-state="ok" data-panel="api / up"' in page
    assert "1:17: parse error: unclosed left parenthesis" in page
    assert 'data-state="error" data-panel="api / broken"' in page


async def test_an_open_console_says_so_louder_when_it_listens_beyond_this_machine(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    async with _client(_config(tmp_path, "127.0.0.1:9797", BOARD), clock) as client:
        local = (await client.get("/rules")).text
    async with _client(_config(tmp_path, "0.0.0.0:9797", BOARD), clock) as client:
        exposed = (await client.get("/rules")).text
    assert ">open console<" in local
    assert "reachable from the network" not in local
    assert "open console, reachable from the network" in exposed


async def test_unknown_pages_and_missing_parts_answer_plainly(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    async with _client(_config(tmp_path, "127.0.0.1:9797", BOARD), clock) as client:
        assert (await client.get("/boards/nope")).status_code == 404
        assert (await client.get("/alerts/not-a-fingerprint")).status_code == 404
        gone = await client.get("/alerts/group/" + "0" * 64)
        assert gone.status_code == 404
        assert "may have resolved long ago" in gone.text
        # Without routing there are no groups to acknowledge.
        csrf_page = await client.get("/silences/new")
        csrf = csrf_page.text.split('name="csrf" value="')[1].split('"')[0]
        ack_url = "/alerts/group/" + "0" * 64 + "/ack"
        ack = await client.post(ack_url, data={"csrf": csrf, "by": "x"})
        assert ack.status_code == 503
        assert (await client.get("/history?range=forever")).status_code == 400
