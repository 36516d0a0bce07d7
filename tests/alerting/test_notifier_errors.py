"""Each notifier reads its service's answers; any error of a notifier is a row's error.

A GitHub 403 that is a rate limit waits for the limit to reset; any other 403
is permanent. Slack's 4xx answers name a permanent problem. A notifier that
raises something unexpected makes its row back off with the error recorded,
instead of being called again in a tight loop.
"""

from __future__ import annotations

import random

import httpx
import pytest

from soulwatch.alerting.config import parse_config
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.message import Notification
from soulwatch.alerting.notifiers.github import GitHubNotifier
from soulwatch.alerting.notifiers.slack import SlackNotifier
from soulwatch.alerting.outbox import Outbox, RowState
from soulwatch.exceptions import DeliveryError
from tests.alerting.support import alert
from tests.alerting.test_notifiers import MemoryIndex, _notification
from tests.helpers import Recorder, Reply


async def _github_error(clock, reply: Reply) -> DeliveryError:
    with Recorder(default=reply) as rec:
        async with httpx.AsyncClient() as client:
            notifier = GitHubNotifier(
                "acme/soulcaster",
                token="t0ken",
                client=client,
                clock=clock,
                index=MemoryIndex(),
                api_url=rec.url,
            )
            with pytest.raises(DeliveryError) as caught:
                await notifier.notify(_notification())
    return caught.value


async def test_github_rate_limit_403_is_retried_after_the_reset(clock):
    reset = int(clock.time()) + 120
    error = await _github_error(
        clock,
        Reply(
            403,
            b'{"message": "API rate limit exceeded for installation ID 1."}',
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        ),
    )
    assert not error.permanent
    assert error.retry_after == pytest.approx(120, abs=1)
    assert "rate limited" in str(error)


async def test_github_secondary_rate_limit_honours_retry_after(clock):
    error = await _github_error(
        clock,
        Reply(
            403, b'{"message": "You have exceeded a secondary rate limit."}', {"retry-after": "30"}
        ),
    )
    assert not error.permanent
    assert error.retry_after == 30


async def test_github_403_without_a_rate_limit_is_permanent(clock):
    error = await _github_error(
        clock, Reply(403, b'{"message": "Resource not accessible by integration"}')
    )
    assert error.permanent
    assert "Resource not accessible" in str(error)


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (410, b"channel_is_archived", True),
        (404, b"no_service", True),
        (403, b"invalid_token", True),
        (429, b"rate_limited", False),
        (503, b"", False),
    ],
)
async def test_slack_answers(clock, status, body, permanent):
    with Recorder(default=Reply(status, body)) as rec:
        async with httpx.AsyncClient() as client:
            notifier = SlackNotifier(f"{rec.url}/slack", client=client, clock=clock)
            with pytest.raises(DeliveryError) as caught:
                await notifier.notify(_notification())
    assert caught.value.permanent is permanent
    if body:
        assert body.decode() in str(caught.value)


class _Broken:
    """A notifier with a bug: it raises something that is not a ``DeliveryError``."""

    def __init__(self) -> None:
        self.calls = 0

    async def notify(self, notification: Notification) -> None:
        self.calls += 1
        raise RuntimeError("template blew up")


async def test_a_notifier_raising_anything_backs_off_and_records_the_error(tmp_path, clock):
    config = parse_config(
        """
route: {receiver: hook, group_wait: 0s}
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
delivery: {initial_backoff: 1s, max_backoff: 1m, deadline: 1h}
"""
    )
    broken = _Broken()
    outbox = Outbox(
        tmp_path / "outbox.db",
        clock=clock,
        notifiers={"hook/webhook/0": broken},
        settings=config.delivery,
        rng=random.Random(3),
    )
    dispatcher = Dispatcher(config, clock=clock, outbox=outbox)
    try:
        await dispatcher.send([alert(clock.time(), alertname="A")])
        await dispatcher.flush_due()
        for _ in range(60):
            await outbox.drain()
            await clock.advance(1)
        # 1 s doubling (with jitter) up to 1 min: a handful of calls in a minute, not thousands.
        assert 3 <= broken.calls <= 10
        [row] = outbox.rows(RowState.PENDING)
        assert row.attempts == broken.calls
        assert row.last_error == "hook/webhook/0: RuntimeError: template blew up"
    finally:
        outbox.close()
