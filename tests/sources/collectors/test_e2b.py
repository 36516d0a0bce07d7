"""The E2B collector against a local server answering like E2B's API."""

from __future__ import annotations

import importlib.util
import json

import pytest

from soulwatch.demo.receiver import sandbox_listing
from soulwatch.sources.collectors import E2BCollector, E2BCollectorConfig
from tests.helpers import RecordedRequest, Recorder, Reply


def _e2b_like(running: int, page: int) -> Recorder:
    sandboxes = [sandbox_listing(f"sbx{i}") for i in range(running)]

    def handle(req: RecordedRequest) -> Reply:
        if req.headers.get("x-api-key") != "e2b_key":
            return Reply(401, b'{"code":401,"message":"Invalid API key"}')
        if not req.path.startswith("/v2/sandboxes"):
            return Reply(404, b"{}")
        start = (
            int(req.path.split("nextToken=")[1].split("&")[0]) if "nextToken=" in req.path else 0
        )
        chunk = sandboxes[start : start + page]
        headers = {"Content-Type": "application/json"}
        if start + page < running:
            headers["x-next-token"] = str(start + page)
        return Reply(200, json.dumps(chunk).encode(), headers)

    return Recorder(handler=handle)


@pytest.mark.parametrize("use_sdk", [True, False], ids=["e2b-sdk", "plain-http"])
async def test_running_sandboxes_counted_over_every_page_with_quota_and_limit(
    use_sdk: bool,
) -> None:
    if use_sdk and importlib.util.find_spec("e2b") is None:
        pytest.fail("the e2b SDK is not installed (it is in soulwatch[all])")
    with _e2b_like(running=7, page=3) as e2b:
        collector = E2BCollector(
            E2BCollectorConfig(
                api_url=e2b.url, api_key="e2b_key", sandbox_limit=10, monthly_hours_quota=50
            ),
            hours_used=lambda: 41.5,
            use_sdk=use_sdk,
        )
        samples = {lbls.name: v for lbls, v in await collector.collect()}
        await collector.aclose()
        assert len(e2b.requests) == 3
        assert all("state=running" in r.path for r in e2b.requests)
    assert samples == {
        "e2b_sandboxes_running": 7,
        "e2b_sandbox_limit": 10,
        "e2b_sandbox_hours_quota": 50,
        "e2b_sandbox_hours_used": 41.5,
    }


async def test_without_an_api_key_only_hours_are_reported() -> None:
    collector = E2BCollector(E2BCollectorConfig(monthly_hours_quota=80), hours_used=lambda: 3.0)
    names = {lbls.name for lbls, _ in await collector.collect()}
    assert "e2b_sandboxes_running" not in names
    assert "e2b_sandbox_hours_used" in names
