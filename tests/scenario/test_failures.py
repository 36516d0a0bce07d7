"""A run fails, clearly, on a missing notification, an unexpected one, or one at the wrong time."""

from __future__ import annotations

from pathlib import Path

from soulwatch.alerting.message import AlertInfo, Status
from soulwatch.scenario import ExpectedNotification, SentNotification
from soulwatch.scenario.runner import match
from tests.scenario.support import OUTAGE, run, write

HEAD = "config: @CONFIG@\ntimeline:\n" + OUTAGE


def test_a_wrong_expectation_says_what_was_expected_and_what_went_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  - at: 5m\n"
        + "    expect:\n"
        + "      - {receiver: ticket, status: firing, alertname: BackendDown}\n"
        + "      - {receiver: chat, status: firing, alertname: BackendDown}\n",
    )
    result = run(path)
    assert not result.ok
    step = result.steps[-1]
    assert not step.passed
    assert step.line == 8
    missing = [p for p in step.problems if p.startswith("missing:")]
    unexpected = [p for p in step.problems if p.startswith("unexpected:")]
    assert missing == ["missing:    ticket firing BackendDown"]
    # The page went out instead: receiver, status, name and time are all shown.
    assert len(unexpected) == 1
    assert " page firing BackendDown " in unexpected[0]
    assert unexpected[0].split()[1].startswith("4m")
    assert sum(p.startswith("went out:") for p in step.problems) == 2


def test_an_unexpected_extra_notification_fails(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  - at: 5m\n    expect:\n"
        + "      - {receiver: page, status: firing, alertname: BackendDown}\n",
    )
    result = run(path)
    step = result.steps[-1]
    assert not step.passed
    (problem,) = [p for p in step.problems if not p.startswith("went out")]
    assert problem.startswith("unexpected: ")
    assert " chat firing BackendDown " in problem


def test_a_notification_outside_its_window_fails(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  - at: 5m\n    expect:\n"
        + "      - {receiver: page, status: firing, alertname: BackendDown,"
        + " between: [2m, 3m]}\n"
        + "      - {receiver: chat, status: firing, alertname: BackendDown,"
        + " between: [4m, 4m15s]}\n",
    )
    step = run(path).steps[-1]
    assert not step.passed
    assert "missing:    page firing BackendDown between 2m and 3m" in step.problems
    assert any(p.startswith("unexpected:") and " page firing" in p for p in step.problems)


def test_expect_none_fails_when_something_went_out(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  - at: 5m\n    expect_none: true\n")
    step = run(path).steps[-1]
    assert not step.passed
    assert step.summary == "expect none since 0s"
    assert sorted(p.split()[2] for p in step.problems if p.startswith("unexpected:")) == [
        "chat",
        "page",
    ]


def test_notifications_after_the_last_check_fail_the_run(tmp_path: Path) -> None:
    # The timeline checks quiet at 1m, then goes on to 5m without checking.
    path = write(
        tmp_path, HEAD + "  - at: 1m\n    expect_none: true\n  - {at: 5m, ping: reddit-poller}\n"
    )
    result = run(path)
    assert [s.passed for s in result.steps] == [True, True, True, False]
    assert result.steps[-1].summary == "end: nothing unchecked went out"
    assert len(result.steps[-1].problems) == 2


def test_a_passing_run_accounts_for_every_notification(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "  - at: 5m\n    expect:\n"
        + "      - {receiver: page, status: firing, alertname: BackendDown,"
        + " labels: {instance: b}}\n"
        + "      - {receiver: chat, status: firing, alertname: BackendDown, alerts: 1}\n",
    )
    result = run(path)
    assert result.ok
    assert len(result.sent) == 2


def _sent(receiver: str, name: str, offset: float) -> SentNotification:
    info = AlertInfo(Status.FIRING, {"alertname": name}, {}, 0.0, None, "fp")
    return SentNotification(offset, receiver, f"{receiver}/x/0", Status.FIRING, (info,))


def test_a_loose_expectation_does_not_take_what_a_precise_one_needs() -> None:
    loose = ExpectedNotification(receiver="chat", status="firing")
    precise = ExpectedNotification(receiver="chat", status="firing", alertname="A")
    sent = [_sent("chat", "A", 1.0), _sent("chat", "B", 2.0)]
    # In this order a greedy pairing would give A to the loose one and fail.
    assert match([loose, precise], sent) == ([], [])
    missing, extra = match([precise, precise], sent)
    assert missing == [precise]
    assert extra == [sent[1]]
