"""The Vercel collector against a local server that answers as Vercel's REST API documents."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.rules.unittest import run_test_file
from soulwatch.sources.collectors.config import VercelCollectorConfig
from soulwatch.sources.collectors.vercel import VercelCollector, VercelError
from tests.helpers import REPO, RecordedRequest, Recorder, Reply

TOKEN = "vercel-token-abc"
NOW = datetime(2026, 12, 17, 9, 30, tzinfo=UTC).timestamp()


def _focus(service: str, day: int, quantity: float, unit: str, cost: float) -> dict[str, object]:
    # The FOCUS 1.3 columns Vercel's /v1/billing/charges returns, one charge per service and day.
    return {
        "BilledCost": cost,
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": f"2026-12-{day:02d}T00:00:00.000Z",
        "ChargePeriodEnd": f"2026-12-{day + 1:02d}T00:00:00.000Z",
        "ConsumedQuantity": quantity,
        "ConsumedUnit": unit,
        "EffectiveCost": cost,
        "ServiceName": service,
        "ServiceProviderName": "Vercel",
        "Tags": {"ProjectId": "prj_dashboard", "ProjectName": "dashboard"},
    }


def _vercel(request: RecordedRequest) -> Reply:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        body = {"error": {"code": "forbidden", "message": "Not authorized"}}
        return Reply(403, json.dumps(body).encode(), {"Content-Type": "application/json"})
    lines = [
        _focus("Function Invocations", 1, 400_000, "Invocations", 0.0),
        _focus("Function Invocations", 2, 450_000, "Invocations", 0.0),
        _focus("Fast Data Transfer", 1, 30.5, "GB", 0.0),
        _focus("Fast Data Transfer", 2, 12.0, "GB", 1.2),
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
    return Reply(
        200,
        gzip.compress(body),
        {"Content-Type": "application/jsonl", "Content-Encoding": "gzip"},
    )


def _config(url: str, token: str = TOKEN) -> VercelCollectorConfig:
    return VercelCollectorConfig(
        api_url=url,
        token=token,
        team_id="team_soulcaster",
        limits={"Function Invocations": 1_000_000, "Fast Data Transfer": 100, "Edge Requests": 1e7},
    )


def _values(samples: list) -> dict[tuple[str, str], float]:
    return {(labels.name, labels.get("service")): value for labels, value in samples}


async def test_usage_this_month_against_the_limits() -> None:
    with Recorder(handler=_vercel) as api:
        collector = VercelCollector(_config(api.url), clock=SimulatedClock(NOW))
        try:
            values = _values(await collector.collect())
        finally:
            await collector.aclose()
        [request] = api.received("/v1/billing/charges")
    query = parse_qs(urlsplit(request.path).query)
    assert query == {
        "from": ["2026-12-01T00:00:00Z"],
        "to": ["2026-12-18T00:00:00Z"],
        "teamId": ["team_soulcaster"],
    }
    assert values[("vercel_usage", "Function Invocations")] == 850_000
    assert values[("vercel_usage", "Fast Data Transfer")] == 42.5
    assert values[("vercel_usage", "Edge Requests")] == 0  # a limit with no usage yet
    assert values[("vercel_usage_limit", "Function Invocations")] == 1_000_000
    assert values[("vercel_billed_cost", "Fast Data Transfer")] == 1.2


async def test_a_refused_token_is_an_error_that_does_not_show_the_token() -> None:
    with Recorder(handler=_vercel) as api:
        collector = VercelCollector(
            _config(api.url, token="wrong-token-1"), clock=SimulatedClock(NOW)
        )
        try:
            with pytest.raises(VercelError, match="HTTP 403") as caught:
                await collector.collect()
        finally:
            await collector.aclose()
    assert "wrong-token-1" not in str(caught.value)


async def test_a_body_that_is_not_json_lines_names_the_line() -> None:
    bad = Reply(200, b'{"ServiceName": "x"}\nnot json\n', {"Content-Type": "application/jsonl"})
    with Recorder(default=bad) as api:
        collector = VercelCollector(_config(api.url), clock=SimulatedClock(NOW))
        try:
            with pytest.raises(VercelError, match="line 2 is not JSON"):
                await collector.collect()
        finally:
            await collector.aclose()


def test_the_preset_rule_notifies_over_80_percent() -> None:
    path = REPO / "src/soulwatch/presets/soulcaster/rules/tests/vercel_usage.test.yml"
    result = run_test_file(path)
    assert result.ok, result.report()
