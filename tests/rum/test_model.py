"""Route folding, the beacon schema and the recorder's bounded series."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from soulwatch.rum.config import RumConfig
from soulwatch.rum.events import BeaconError, parse_batch
from soulwatch.rum.limits import RateLimiter
from soulwatch.rum.paths import RouteFolder
from soulwatch.rum.recorder import RumRecorder

KEY = "site-key-1234"


def _config(**extra: Any) -> RumConfig:
    site = {
        "name": "dashboard",
        "key": KEY,
        "origins": ["http://127.0.0.1:3000"],
        "routes": ["/", "/clusters/[id]", "/docs/[...slug]", "/api/clusters/[id]/jobs"],
    }
    return RumConfig.model_validate({"sites": [site], **extra})


def _body(*events: dict[str, Any], session: str = "abcdef123456") -> bytes:
    return json.dumps({"site": KEY, "session": session, "events": list(events)}).encode()


@pytest.mark.parametrize(
    ("path", "folded"),
    [
        ("/", "/"),
        ("/clusters/42", "/clusters/[id]"),
        ("/clusters/42/", "/clusters/[id]"),
        ("/clusters", "other"),
        ("/clusters/42/extra", "other"),
        ("/docs/a/b/c", "/docs/[...slug]"),
        ("/docs", "other"),
        ("/api/clusters/9/jobs", "/api/clusters/[id]/jobs"),
        ("/admin", "other"),
    ],
)
def test_paths_fold_into_next_js_route_templates(path: str, folded: str) -> None:
    folder = RouteFolder(["/", "/clusters/[id]", "/docs/[...slug]", "/api/clusters/[id]/jobs"])
    assert folder.fold(path) == folded


def test_a_static_route_wins_over_a_dynamic_one() -> None:
    folder = RouteFolder(["/clusters/[id]", "/clusters/new"])
    assert folder.fold("/clusters/new") == "/clusters/new"
    assert folder.fold("/clusters/5") == "/clusters/[id]"


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"routes": ["clusters/[id]"]}, "must start with '/'"),
        ({"routes": ["/a/[...x]/b"]}, "neither a name"),
        ({"origins": ["app.example.com"]}, "must be a scheme and host"),
        ({"name": "has space"}, "a site name is"),
    ],
)
def test_bad_site_config_is_refused_with_what_is_wrong(site: dict[str, Any], message: str) -> None:
    base = {"name": "d", "key": KEY, "origins": ["https://app.example"], **site}
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        RumConfig.model_validate({"sites": [base]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"site": KEY, "session": "x", "events": []}).encode(), "session:"),
        (_body({"type": "vital", "name": "FID", "value": 3, "page": "/"}), r"events\[0\]\.name"),
        (
            _body(
                {"type": "pageview", "page": "/"},
                {"type": "api", "page": "/", "route": "/api/x", "status": 900, "duration": 1},
            ),
            r"events\[1\]\.status",
        ),
        (_body({"type": "vital", "name": "LCP", "value": float("nan"), "page": "/"}), "events"),
        (_body({"type": "error", "kind": "oops", "page": "/"}), r"events\[0\]\.kind"),
        (_body({"type": "pageview", "page": "relative"}), r"events\[0\]\.page"),
    ],
)
def test_malformed_beacons_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(BeaconError, match=message):
        parse_batch(body, 200)


def test_a_batch_over_the_event_limit_is_refused() -> None:
    with pytest.raises(BeaconError, match="at most 3 events"):
        parse_batch(_body(*[{"type": "pageview", "page": "/"}] * 4), 3)


def _value(recorder: RumRecorder, name: str, **labels: str) -> float | None:
    for series, value in recorder.samples():
        if series.name == name and all(series.get(k) == v for k, v in labels.items()):
            return value
    return None


def test_the_recorder_counts_views_vitals_errors_and_api_calls() -> None:
    now = [1000.0]
    recorder = RumRecorder(_config(), lambda: now[0])
    recorder.record(
        parse_batch(
            _body(
                {"type": "pageview", "page": "/clusters/1"},
                {"type": "pageview", "page": "/clusters/2?tab=jobs"},
                {"type": "vital", "name": "LCP", "value": 3200, "page": "/clusters/1"},
                {"type": "vital", "name": "CLS", "value": 0.12, "page": "/clusters/1"},
                {"type": "error", "kind": "react", "page": "/"},
                {
                    "type": "api",
                    "route": "/api/clusters/1/jobs",
                    "status": 500,
                    "duration": 80,
                    "page": "/clusters/1",
                },
            ),
            200,
        )
    )
    page = "/clusters/[id]"
    assert _value(recorder, "rum_page_views_total", page=page) == 2
    assert _value(recorder, "rum_lcp_seconds_bucket", page=page, le="3.0") == 0
    assert _value(recorder, "rum_lcp_seconds_bucket", page=page, le="4.0") == 1
    assert _value(recorder, "rum_lcp_seconds_sum", page=page) == pytest.approx(3.2)
    assert _value(recorder, "rum_cls_bucket", page=page, le="0.15") == 1
    assert _value(recorder, "rum_errors_total", page="/", kind="react") == 1
    api = {"route": "/api/clusters/[id]/jobs", "code": "500"}
    assert _value(recorder, "rum_api_request_duration_seconds_count", **api) == 1
    assert _value(recorder, "rum_active_sessions", site="dashboard") == 1


def test_active_sessions_count_only_the_last_window() -> None:
    now = [1000.0]
    recorder = RumRecorder(_config(active_window="5m"), lambda: now[0])
    recorder.record(parse_batch(_body({"type": "pageview", "page": "/"}, session="s-one-1234"), 9))
    now[0] += 200
    recorder.record(parse_batch(_body({"type": "pageview", "page": "/"}, session="s-two-1234"), 9))
    assert _value(recorder, "rum_active_sessions") == 2
    now[0] += 150  # the first is now 350 s old
    assert _value(recorder, "rum_active_sessions") == 1


def test_a_million_distinct_paths_make_no_more_series_than_the_templates() -> None:
    recorder = RumRecorder(_config(), lambda: 0.0)
    events = [{"type": "pageview", "page": f"/p/{i}"} for i in range(1000)]
    for batch in range(1000):
        for event in events:
            event["page"] = f"/x{batch}/{event['page']}"[:60]
        recorder.record(parse_batch(_body(*events), 1000))
    pages = {s.get("page") for s, _ in recorder.samples() if s.name == "rum_page_views_total"}
    assert pages == {"other"}
    assert _value(recorder, "rum_page_views_total", page="other") == 1_000_000


def test_the_rate_limiter_refills_and_forgets_old_keys() -> None:
    limiter = RateLimiter(per_minute=60, max_keys=2)
    assert limiter.allow("a", 60, now=0.0)
    assert not limiter.allow("a", 1, now=0.0)
    assert limiter.allow("a", 1, now=1.0)  # one token a second
    limiter.allow("b", 1, now=1.0)
    limiter.allow("c", 1, now=1.0)  # "a" is forgotten: a full bucket again
    assert limiter.allow("a", 60, now=1.0)
    assert limiter.retry_after(30) == 30
