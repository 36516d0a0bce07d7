"""The public API of soulwatch.scenario is a reviewed list."""

from __future__ import annotations

import soulwatch.scenario


def test_public_api() -> None:
    assert soulwatch.scenario.__all__ == [
        "ExpectedNotification",
        "RecordingNotifier",
        "RecordingTransport",
        "Scenario",
        "ScenarioResult",
        "SentNotification",
        "Step",
        "StepResult",
        "load_scenario",
        "run_scenario",
    ]
    for name in soulwatch.scenario.__all__:
        assert getattr(soulwatch.scenario, name).__doc__
