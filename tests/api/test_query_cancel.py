"""A query past its timeout answers Prometheus's timeout error, and its evaluation stops;
so does one whose client went away.

The query runs on the monitor's runner (here one worker thread, so a query
still evaluating would hold up the next one). Uncancelled, the heavy query
below evaluates for about half a minute on this kind of machine (even on the
array path); once its caller stops waiting, it stops within moments, and the
worker serves the next query.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from soulwatch.clock import SystemClock
from soulwatch.runner import ThreadRunner
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.api.support import serve
from tests.helpers import wait_until

T0_MS = 1_700_000_000_000
HOURS = 6
#: A per-window function computed sample by sample: each of the 10,800
#: steps of each of 24 series reads a 6-hour window of 21,600 samples.
HEAVY = "max(double_exponential_smoothing(heavy_wide[6h], 0.5, 0.5))"
#: Copies of the heavy series, so that the query stays heavy on the array path.
WIDE = 24


def _storage() -> MemoryStorage:
    storage = MemoryStorage()
    app = storage.appender()
    for second in range(HOURS * 3600):
        app.append(Labels.of(__name__="heavy"), T0_MS + second * 1000, float(second % 97))
    app.commit()
    return storage


def _wide_storage() -> MemoryStorage:
    storage = _storage()
    app = storage.appender()
    for copy in range(WIDE):
        labels = Labels.of(__name__="heavy_wide", copy=str(copy))
        for second in range(HOURS * 3600):
            app.append(labels, T0_MS + second * 1000, float((second + copy) % 97))
    app.commit()
    return storage


def test_a_query_past_its_timeout_answers_503_and_frees_its_worker(tmp_path: Path) -> None:
    end = (T0_MS + HOURS * 3600 * 1000) / 1000
    runner = ThreadRunner(workers=1)
    try:
        with serve(tmp_path, SystemClock(), storage=_wide_storage(), runner=runner) as s:
            r = s.http.get(
                "/api/v1/query_range",
                params={
                    "query": HEAVY,
                    "start": end - 3 * 3600,
                    "end": end,
                    "step": "1",
                    "timeout": "500ms",
                },
            )
            assert r.status_code == 503, r.text
            assert r.json() == {
                "status": "error",
                "errorType": "timeout",
                "error": "query timed out in expression evaluation",
            }
            # The evaluation noticed it was cancelled and gave its thread back.
            wait_until(lambda: runner.busy == 0, timeout=20, what="the cancelled query to stop")
            assert runner.queued == 0
            # The one worker answers the next query well within that query's own timeout.
            params = {"query": "heavy", "time": end, "timeout": "10s"}
            r = s.http.get("/api/v1/query", params=params)
            assert r.status_code == 200, r.text
            (sample,) = r.json()["data"]["result"]
            assert sample["metric"] == {"__name__": "heavy"}
    finally:
        runner.close()


def test_a_query_whose_client_went_away_frees_its_worker(tmp_path: Path) -> None:
    end = (T0_MS + HOURS * 3600 * 1000) / 1000
    runner = ThreadRunner(workers=1)
    try:
        with serve(tmp_path, SystemClock(), storage=_wide_storage(), runner=runner) as s:
            params = {"query": HEAVY, "start": end - 3 * 3600, "end": end, "step": "1"}
            # The client gives up long before the query's own timeout (120 s): its
            # connection closes mid-query.
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(s.url + "/api/v1/query_range", params=params, timeout=1)
            wait_until(lambda: runner.busy == 0, timeout=20, what="the abandoned query to stop")
            assert runner.queued == 0
    finally:
        runner.close()
