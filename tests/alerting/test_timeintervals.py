"""Time intervals as Alertmanager defines them."""

from __future__ import annotations

from datetime import UTC, datetime

from soulwatch.alerting.config import TimeIntervalSpec
from soulwatch.alerting.timeintervals import interval_contains, next_change, spec_contains


def _t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_weekdays_times_and_end_exclusive():
    spec = TimeIntervalSpec.model_validate(
        {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}
    )
    assert spec_contains(spec, _t("2026-11-23T09:00:00"))  # Monday
    assert not spec_contains(spec, _t("2026-11-23T17:00:00"))  # end is exclusive
    assert not spec_contains(spec, _t("2026-11-28T10:00:00"))  # Saturday


def test_days_of_month_from_the_end_months_and_years():
    last_days = TimeIntervalSpec.model_validate({"days_of_month": ["-3:-1"]})
    assert spec_contains(last_days, _t("2026-02-26T12:00:00"))
    assert not spec_contains(last_days, _t("2026-02-25T12:00:00"))
    q1 = TimeIntervalSpec.model_validate({"months": ["january:march"], "years": ["2026"]})
    assert spec_contains(q1, _t("2026-03-31T23:59:00"))
    assert not spec_contains(q1, _t("2026-04-01T00:00:00"))
    assert not spec_contains(q1, _t("2027-01-05T00:00:00"))


def test_location_and_next_change():
    berlin = TimeIntervalSpec.model_validate(
        {"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "Europe/Berlin"}
    )
    # 21:30 UTC is 22:30 in Berlin (CET, UTC+1) in November.
    assert interval_contains([berlin], _t("2026-11-23T21:30:00"))
    assert not interval_contains([berlin], _t("2026-11-23T20:30:00"))
    assert next_change([berlin], _t("2026-11-23T21:30:00")) == _t("2026-11-23T23:00:00")
