"""A resolve is durable once decided: kill -9 before it is sent, and it still arrives.

The reproduction of the field report: ``for: 0s``, ``group_interval: 30s``,
``repeat_interval: 1h``. The fault goes on (page), off, and soulwatch is
killed with ``kill -9`` a few seconds later, before the group's next tick
would have sent the resolve. After the restart the fault is back: the first
episode's resolve and the second episode's page must both arrive.
"""

from __future__ import annotations

import time

import pytest

from tests.alerting.run_support import FaultTarget, MonitorProcess, pages, receiver, write_config
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def test_kill_9_during_resolve_then_the_next_episode_still_pages(tmp_path):
    with FaultTarget() as target, receiver() as hook:
        config = write_config(tmp_path, target.address, hook.url, data_dir=tmp_path / "data")
        proc = MonitorProcess(config)
        try:
            proc.start()
            target.on = True
            wait_until(lambda: pages(hook), timeout=20, what="the first page")
            target.on = False
            wait_until(lambda: not proc.firing(), timeout=20, what="the alert resolved")
            time.sleep(2)  # the resolve is decided and saved; the group ticks in ~30 s
            proc.kill9()
            assert [p[0] for p in pages(hook)] == ["firing"], "the resolve had not left"

            target.on = True
            proc.start()
            wait_until(proc.firing, timeout=20, what="firing again")
            wait_until(lambda: len(pages(hook)) >= 3, timeout=20, what="resolve and page")
            time.sleep(2)
        finally:
            proc.stop()
    sent = pages(hook)
    assert [p[0] for p in sent] == ["firing", "resolved", "firing"]
    first, resolve, second = sent
    assert resolve[2] == first[2], "the resolve is the first episode's"
    assert second[2] != first[2], "the page is a new episode"
    assert len({p[1] for p in sent}) == 3, "three notifications, three keys"
