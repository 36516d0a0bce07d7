"""Console pages served in-process from a bare context: what a misconfiguration looks like."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import httpx

from soulwatch.api.app import console_of, create_app
from soulwatch.api.console import data
from soulwatch.api.console.boards import load_board
from soulwatch.api.context import ApiContext
from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig, load_config
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels


def _context(config: SoulwatchConfig, clock: SimulatedClock) -> ApiContext:
    storage = MemoryStorage()
    app = storage.appender()
    for i in range(10):
        t_ms = round((clock.time() - 60 + i * 6) * 1000)
        app.append(Labels.of(__name__="up", job="api"), t_ms, 1)
    app.commit()
    return ApiContext(
        storage=storage,
        engine=Engine(storage, clock=clock),
        clock=clock,
        auth=config.auth,
        config=config,
    )


def _client(config: SoulwatchConfig, clock: SimulatedClock, app: Any = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app or create_app(_context(config, clock)))
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


#: The board over the last 5 minutes, so the samples of the last minute draw a line.
RECENT = BOARD.replace("    title: API\n", "    title: API\n    range: 5m\n")


def test_values_without_history_do_not_wait_for_the_sparklines(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    config = _config(tmp_path, "127.0.0.1:9797", RECENT)
    ctx = _context(config, clock)
    board = load_board(tmp_path / "board.yml")
    cache = data.SparkCache()
    with cache.lock:  # as while the background warm-up computes the sparklines
        tiles = data.evaluate_board(ctx, board, [], cache, history=False)
    assert (tiles[0].value, tiles[0].state, len(tiles[0].points)) == (1.0, "ok", 1)
    full = data.evaluate_board(ctx, board, [], cache)
    assert len(full[0].points) > 1


async def test_a_started_console_warms_the_sparklines_in_the_background(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    config = _config(tmp_path, "127.0.0.1:9797", RECENT)
    app = create_app(_context(config, clock))
    console = console_of(app)
    await console.start()
    try:
        async with _client(config, clock, app) as client:
            page = ""
            for _ in range(200):  # bounded: the warm-up of one small board
                page = (await client.get("/")).text
                if 'id="warming"' not in page:
                    break
                await asyncio.sleep(0.01)
        assert 'id="warming"' not in page
        assert "<polyline" in page
    finally:
        await console.aclose()
