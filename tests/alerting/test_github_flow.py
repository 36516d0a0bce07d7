"""A P2 ticket through the whole pipeline: one issue per group, kept across a restart."""

from __future__ import annotations

from tests.alerting.support import alert, harness
from tests.alerting.test_notifiers import FakeGitHub
from tests.helpers import Recorder


async def test_issue_opened_then_closed_after_restart_without_searching(tmp_path, clock):
    gh = FakeGitHub()
    with Recorder(handler=gh) as rec:
        cfg = f"""
route:
  receiver: ticket
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: ticket
    github_configs:
      - repository: acme/soulcaster
        token: t
        api_url: "{rec.url}"
        labels: [soulwatch]
"""
        a = alert(clock.time(), alertname="SlowP95", priority="P2", instance="i")
        async with harness(cfg, tmp_path, clock) as h:
            await h.fire(a)
        async with harness(cfg, tmp_path, clock) as h:
            await h.fire(a)
            await h.run_for(60, step=10)
            await h.resolve(a)
            await h.run_for(120, step=10)
        paths = [(r.method, r.path.split("?")[0]) for r in rec.received()]
    assert list(gh.issues) == [1]
    assert gh.issues[1]["state"] == "closed"
    assert gh.issues[1]["labels"] == ["soulwatch", "P2"]
    # The issue number came from the outbox database, not from a search.
    assert ("GET", "/search/issues") not in paths[1:]
