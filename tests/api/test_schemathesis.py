"""Property-based requests from the OpenAPI document: no endpoint answers 5xx.

schemathesis generates valid and invalid requests for every operation of
``/api/v1/openapi.json`` and sends them to the real app over uvicorn, with
and without an admin token; any 5xx fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.views import SilenceStoreView
from soulwatch.clock import SimulatedClock
from soulwatch.sources.heartbeats import HeartbeatCheckConfig, HeartbeatsConfig
from tests.api.support import ADMIN, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = Path(tmp_path_factory.mktemp("schemathesis"))
    clock = SimulatedClock()
    store = SilenceStore(tmp / "silences.sqlite", clock)
    heartbeats = HeartbeatsConfig(
        ping_key="schemathesis-ping-key-000",
        auto_create=True,
        checks=[HeartbeatCheckConfig(name="declared")],
    )

    async def reload() -> None:  # a monitor whose config file did not change
        return None

    try:
        with serve(
            tmp, clock, silences=SilenceStoreView(store), heartbeats=heartbeats, reload=reload
        ) as served:
            schema = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json")
            yield schema
    finally:
        store.close()


def _run_all(schema: Any, headers: dict[str, str]) -> int:
    # schemathesis' pytest plugin does not work with this pytest; drive it by hand.
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        check()
        ran += 1
    return ran


def test_no_server_errors_anonymous(api_schema: Any) -> None:
    assert _run_all(api_schema, {}) >= 15


def test_no_server_errors_with_admin_token(api_schema: Any) -> None:
    assert _run_all(api_schema, {"Authorization": f"Bearer {ADMIN}"}) >= 15
