"""``POST /rum/v1/events`` on a real ``soulwatch run``: accepted, refused, bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.rum.support import KEY, rum_monitor, value, wait_value

ORIGIN = "http://127.0.0.1:3999"


def _batch(*events: dict[str, Any], key: str = KEY, session: str = "session-0001") -> str:
    return json.dumps({"site": key, "session": session, "events": list(events)})


def _post(
    api: httpx.Client, body: str | bytes, origin: str = ORIGIN, **headers: str
) -> httpx.Response:
    return api.post(
        "/rum/v1/events",
        content=body,
        headers={"Origin": origin, "Content-Type": "text/plain;charset=UTF-8", **headers},
    )


def test_beacons_become_rum_series_and_bad_ones_are_refused(tmp_path: Path) -> None:
    with rum_monitor(tmp_path, ORIGIN, session_events_per_minute=100) as api:
        ok = _post(
            api,
            _batch(
                {"type": "pageview", "page": "/clusters/12"},
                {"type": "vital", "name": "TTFB", "value": 420, "page": "/clusters/12"},
                {"type": "api", "route": "/api/broken", "status": 500, "duration": 35, "page": "/"},
            ),
        )
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == ORIGIN

        wait_value(api, 'rum_page_views_total{site="dashboard",page="/clusters/[id]"}', 1)
        assert value(api, 'rum_ttfb_seconds_bucket{page="/clusters/[id]",le="0.5"}') == 1
        assert (
            value(api, 'rum_api_request_duration_seconds_count{route="/api/broken",code="500"}')
            == 1
        )
        assert value(api, 'rum_active_sessions{site="dashboard"}') == 1

        # A preflight from an allowed origin passes; from another it does not.
        pre = api.options("/rum/v1/events", headers={"Origin": ORIGIN})
        assert pre.status_code == 204
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert (
            api.options("/rum/v1/events", headers={"Origin": "https://evil.example"}).status_code
            == 403
        )

        wrong_key = _post(api, _batch({"type": "pageview", "page": "/"}, key="not-the-key-000"))
        assert (wrong_key.status_code, wrong_key.text) == (403, "unknown site key\n")
        wrong_origin = _post(
            api, _batch({"type": "pageview", "page": "/"}), origin="https://evil.example"
        )
        assert wrong_origin.status_code == 403
        assert "access-control-allow-origin" not in wrong_origin.headers
        malformed = _post(api, _batch({"type": "vital", "name": "LCP", "value": -1, "page": "/"}))
        assert malformed.status_code == 400
        assert "events[0].value" in malformed.text
        assert _post(api, b"x" * (65 * 1024)).status_code == 413
        bot = _post(
            api, _batch({"type": "pageview", "page": "/"}), **{"User-Agent": "Googlebot/2.1"}
        )
        assert bot.status_code == 204

        # A flood from one session: 100 events a minute, then 429 with Retry-After.
        statuses = [
            _post(
                api, _batch(*[{"type": "pageview", "page": "/"}] * 30, session="flooding-1")
            ).status_code
            for _ in range(5)
        ]
        assert statuses[:3] == [204, 204, 204]
        assert statuses[3:] == [429, 429]

        # Nothing refused was counted; the refusals are.
        wait_value(api, 'rum_page_views_total{page="/"}', 90)
        wait_value(api, 'sum(rum_rejected_batches_total{reason="rate_limited"})', 2)
        assert value(api, 'sum(rum_rejected_batches_total{reason="forbidden"})') == 2
        assert value(api, 'rum_rejected_batches_total{reason="malformed"}') == 1
        assert value(api, 'rum_rejected_batches_total{reason="too_large"}') == 1
        assert value(api, 'rum_rejected_batches_total{reason="bot"}') == 1


def test_many_distinct_paths_fold_into_other(tmp_path: Path) -> None:
    with rum_monitor(tmp_path, ORIGIN) as api:
        for n in range(20):
            events = [{"type": "pageview", "page": f"/user/{n}/{i}"} for i in range(200)]
            assert _post(api, _batch(*events, session=f"session-{n:04d}")).status_code == 204
        wait_value(api, 'rum_page_views_total{page="other"}', 4000)
        assert value(api, "count(rum_page_views_total)") == 1
        assert value(api, "rum_active_sessions") == 20


def test_the_agent_is_served_compressed_and_cacheable(tmp_path: Path) -> None:
    with rum_monitor(tmp_path, ORIGIN) as api:
        tag = api.get("/rum/v1/agent.js", headers={"Accept-Encoding": "gzip"})
        assert tag.status_code == 200
        assert tag.headers["content-type"].startswith("text/javascript")
        assert tag.headers["content-encoding"] == "gzip"
        assert int(tag.headers["content-length"]) < 5 * 1024
        assert "soulwatchAgent" in tag.text
        again = api.get("/rum/v1/agent.js", headers={"If-None-Match": tag.headers["etag"]})
        assert again.status_code == 304
        module = api.get("/rum/v1/agent.mjs", headers={"Origin": ORIGIN})
        assert module.headers["access-control-allow-origin"] == ORIGIN
        # Nothing but the RUM routes answers with CORS headers.
        assert (
            "access-control-allow-origin"
            not in api.get(
                "/api/v1/query", params={"query": "1"}, headers={"Origin": ORIGIN}
            ).headers
        )
