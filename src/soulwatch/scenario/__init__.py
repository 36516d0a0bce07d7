"""Scenario tests: a timeline run through rules and routing on a simulated clock.

``soulwatch test scenario FILE`` loads a scenario (:func:`load_scenario`),
runs it (:func:`run_scenario`) and reports each step; the run fails on a
missing notification and on an unexpected one. See ``docs/scenarios.md``.
"""

from soulwatch.scenario.model import ExpectedNotification, Scenario, Step, load_scenario
from soulwatch.scenario.recording import RecordingNotifier, RecordingTransport, SentNotification
from soulwatch.scenario.runner import ScenarioResult, StepResult, run_scenario

__all__ = [
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
