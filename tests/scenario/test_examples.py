"""The Soulcaster example scenarios pass, and what they check is what a user would see."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from soulwatch.scenario import load_scenario, run_scenario
from tests.scenario.support import EXAMPLES, PRESET_CONFIG

SCENARIOS = sorted(EXAMPLES.glob("*.scenario.yml"))


def test_there_are_examples_for_each_behaviour() -> None:
    names = {p.name.removesuffix(".scenario.yml") for p in SCENARIOS}
    assert {
        "backend_down",
        "backend_down_repeats",
        "silence_ends_while_firing",
        "silence_expired_early",
        "inhibition",
        "heartbeat_missing",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
async def test_example_passes(path: Path) -> None:
    result = await run_scenario(load_scenario(path))
    failures = [(s.at, s.problems) for s in result.steps if not s.passed]
    assert result.ok, failures
    # Every notification that went out was checked by some expect step.
    checked = [n for s in result.steps for n in s.sent]
    assert checked == result.sent


async def test_backend_down_pages_at_exactly_for_plus_evaluation() -> None:
    scenario = load_scenario(EXAMPLES / "backend_down.scenario.yml")
    result = await run_scenario(scenario)
    firing = [s for s in result.sent if s.status.value == "firing"]
    assert sorted(s.receiver for s in firing) == ["chat", "page"]
    for sent in firing:
        (alert,) = sent.alerts
        fired = alert.starts_at - scenario.start
        # The probe fails from 2m: the first evaluation that sees it (within one
        # 15s interval) starts the 2m `for`; the page goes out at the very
        # evaluation that fires, with no group wait.
        assert 120 <= fired - 120 < 135
        assert sent.offset == pytest.approx(fired)


async def test_silence_end_releases_the_page_at_that_moment() -> None:
    scenario = load_scenario(EXAMPLES / "silence_ends_while_firing.scenario.yml")
    result = await run_scenario(scenario)
    firing = [s for s in result.sent if s.status.value == "firing"]
    # Fired at about 4m under a silence until 11m: sent at 11m exactly, not at
    # the group's next group_interval tick (as Alertmanager would).
    assert [(s.receiver, s.offset) for s in firing] == [("page", 660.0), ("chat", 660.0)]
    assert all(s.alerts[0].starts_at - scenario.start < 300 for s in firing)


async def test_inhibited_alert_never_reaches_a_receiver_while_its_source_fires() -> None:
    scenario = load_scenario(EXAMPLES / "inhibition.scenario.yml")
    result = await run_scenario(scenario)
    backend_resolved = min(
        s.offset
        for s in result.sent
        if s.alertname == "BackendDown" and s.status.value == "resolved"
    )
    error_rate = [s for s in result.sent if s.alertname == "HighErrorRate"]
    assert {s.receiver for s in error_rate} == {"page", "chat"}
    # It fired minutes earlier (for: 5m from about 2m30s) but went out only
    # after the backend was back.
    assert all(s.alerts[0].starts_at - scenario.start < 8 * 60 for s in error_rate)
    assert all(s.offset > 12 * 60 for s in error_rate)
    assert backend_resolved > 12 * 60


def test_examples_run_the_presets_own_configuration() -> None:
    for path in SCENARIOS:
        assert load_scenario(path).config.source == PRESET_CONFIG.resolve()


async def test_two_runs_send_the_same_notifications_at_the_same_instants() -> None:
    scenario = load_scenario(EXAMPLES / "inhibition.scenario.yml")
    first = await run_scenario(scenario)
    second = await run_scenario(scenario)
    assert first.sent == second.sent
    assert first.requests == second.requests


async def test_the_page_repeats_like_alertmanager_and_chat_does_not() -> None:
    result = await run_scenario(load_scenario(EXAMPLES / "backend_down_repeats.scenario.yml"))
    pages = [s.offset for s in result.sent if s.receiver == "page" and s.status.value == "firing"]
    chats = [s.offset for s in result.sent if s.receiver == "chat" and s.status.value == "firing"]
    assert len(chats) == 1
    # Alertmanager repeats at the first flush strictly after repeat_interval (1h):
    # with group_interval 5m that is 65 minutes, every time.
    assert [round(b - a) for a, b in itertools.pairwise(pages)] == [3900, 3900]
