"""Console queries stop once nobody waits for them: past ``api.query_timeout``, or the page gone.

The query runs on the console's runner (here one worker thread): Explore's,
a board's, and the chart on an alert's page. Uncancelled,
the queries below evaluate for about a minute on this kind of machine (a
per-window function over 24 series at every second of the chart's range, and
of two hours before it for Explore and a board); the engine's own
timeout is left at its 120 s default, so only the console's cancelling can
free the worker within the bounded waits below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from soulwatch.alerts import fingerprint
from soulwatch.api.views import RuleManagerView
from soulwatch.clock import SimulatedClock, SystemClock
from soulwatch.config import ApiConfig, SoulwatchConfig
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.runner import ThreadRunner
from tests.api.support import Served, serve
from tests.api.test_query_cancel import HOURS, T0_MS, _wide_storage
from tests.helpers import wait_until

#: About a minute of CPU uncancelled (3 h of chart and 2 h of subquery, each
#: second a 6 h window of 24 series), against the 20 s waits below.
HEAVY = "max_over_time(max(double_exponential_smoothing(heavy_wide[6h], 0.5, 0.5))[2h:1s])"
END = (T0_MS + HOURS * 3600 * 1000) / 1000


@pytest.fixture
def runner() -> Iterator[ThreadRunner]:
    pool = ThreadRunner(workers=1)
    yield pool
    pool.close()


def _explore(served: Served, expr: str, timeout: float) -> httpx.Response:
    params = {"expr": expr, "range": "3h", "end": str(END)}
    return httpx.get(served.url + "/explore", params=params, timeout=timeout)


def _frees_its_worker(served: Served, runner: ThreadRunner) -> None:
    wait_until(lambda: runner.busy == 0, timeout=20, what="the cancelled query to stop")
    assert runner.queued == 0
    # The one worker answers the next query, and the page shows its value.
    page = _explore(served, "heavy", timeout=30)
    assert page.status_code == 200, page.text
    assert "timed out" not in page.text
    assert "heavy" in page.text


def test_a_query_past_the_timeout_shows_it_and_frees_its_worker(
    tmp_path: Path, runner: ThreadRunner
) -> None:
    api = ApiConfig(query_timeout=0.5)
    with serve(tmp_path, SystemClock(), storage=_wide_storage(), runner=runner, api=api) as served:
        page = _explore(served, HEAVY, timeout=30)
        assert page.status_code == 200, page.text
        assert "query timed out in expression evaluation" in page.text
        assert "api.query_timeout" in page.text
        _frees_its_worker(served, runner)


def test_a_closed_page_stops_its_query(tmp_path: Path, runner: ThreadRunner) -> None:
    api = ApiConfig(query_timeout=600)
    with serve(tmp_path, SystemClock(), storage=_wide_storage(), runner=runner, api=api) as served:
        # The browser gives up (the tab closed): its connection closes mid-query.
        with pytest.raises(httpx.ReadTimeout):
            _explore(served, HEAVY, timeout=1)
        _frees_its_worker(served, runner)


def test_a_board_past_the_timeout_says_so_and_frees_its_worker(
    tmp_path: Path, runner: ThreadRunner
) -> None:
    board = tmp_path / "heavy.yml"
    board.write_text(
        "name: heavy\ntitle: Heavy\nrange: 3h\nrows:\n  - title: all\n    panels:\n"
        "      - title: smoothed\n"
        f"        expr: '{HEAVY}'\n"
    )
    config = SoulwatchConfig.model_validate({"console": {"boards": [str(board)]}})
    api = ApiConfig(query_timeout=0.5)
    clock = SimulatedClock(start=END)  # the board's "now" is where the samples are
    with serve(
        tmp_path, clock, storage=_wide_storage(), runner=runner, api=api, config=config
    ) as served:
        page = httpx.get(served.url + "/", timeout=30)
        assert page.status_code == 200, page.text
        assert "the board&#39;s queries timed out" in page.text
        wait_until(lambda: runner.busy == 0, timeout=20, what="the cancelled board to stop")
        assert runner.queued == 0


#: An alert over the heavy series: an evaluation reads 10 s of 24 series' 6 h
#: windows (a fraction of a second); its page's chart, the same at every second
#: of its 3 h episode and a margin, about a minute uncancelled.
ALERT_RULES = """\
groups:
  - name: heavy
    rules:
      - alert: Smoothed
        expr: max_over_time(max(double_exponential_smoothing(heavy_wide[6h],0.5,0.5))[10s:1s]) > -1
        for: 1h
"""


class _Sink:
    async def send(self, alerts: object) -> None:
        return None


def test_an_alert_chart_past_the_timeout_says_so_and_frees_its_worker(
    tmp_path: Path, runner: ThreadRunner
) -> None:
    storage = _wide_storage()
    clock = SimulatedClock(start=END - 3 * 3600)
    store = AlertStateStore.in_data_dir(tmp_path)
    manager = RuleManager(
        engine=Engine(storage, clock=clock), storage=storage, sink=_Sink(), clock=clock, store=store
    )
    (tmp_path / "rules.yml").write_text(ALERT_RULES)
    manager.load([tmp_path / "rules.yml"])
    try:
        # Pending three hours ago, firing now: the chart spans the episode, 3 h and more.
        asyncio.run(manager.evaluate_all(clock.time()))
        asyncio.run(clock.advance(3 * 3600))
        asyncio.run(manager.evaluate_all(clock.time()))
        (alert,) = manager.active_alerts()
        fp = fingerprint(alert.labels)
        api = ApiConfig(query_timeout=0.5)
        with serve(
            tmp_path,
            clock,
            storage=storage,
            runner=runner,
            api=api,
            rules=RuleManagerView(manager),
        ) as served:
            page = httpx.get(f"{served.url}/alerts/{fp}", timeout=30)
            assert page.status_code == 200, page.text
            assert "Smoothed" in page.text
            assert "the chart&#39;s query timed out (after 500ms; api.query_timeout)" in page.text
            wait_until(lambda: runner.busy == 0, timeout=20, what="the cancelled chart to stop")
            assert runner.queued == 0
    finally:
        store.close()
