"""HA with an Alertmanager cluster: two soulwatch instances, two clustered Alertmanagers.

Each soulwatch evaluates the same rule on the same target and forwards its
alerts to both Alertmanagers (``alerting.alertmanagers``), as a Prometheus
pair does; the Alertmanagers gossip their notification log
(``--cluster.peer``) and page a recording webhook. One page per alert
episode, also after a ``kill -9`` of either soulwatch and of either
Alertmanager.
"""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.alerting.run_support import FaultTarget, receiver
from tests.helpers import (
    Recorder,
    free_port,
    need_binary,
    soulwatch_command,
    started,
    subprocess_env,
    wait_until,
)
from tests.peers import ready_at

pytestmark = pytest.mark.slow

AM_CONFIG = """\
route:
  receiver: pager
  group_by: [alertname]
  group_wait: 0s
  # Longer than the two instances' evaluations are apart: both resolves land in one flush
  # (with 1s, the first instance's resolve and the second's last firing alert can flip it).
  group_interval: 3s
  repeat_interval: 1h
receivers:
  - name: pager
    webhook_configs:
      - url: {url}/page
        send_resolved: true
"""

RULES = """\
groups:
  - name: faults
    interval: 1s
    rules:
      - alert: Broken
        expr: fault == 1
"""

#: How long Alertmanager waits per position in the cluster before sending (short for tests).
PEER_TIMEOUT = "1s"
#: Long enough for a second page to arrive if one were coming.
SETTLE = 5.0


@dataclass
class Cluster:
    """The processes of the set-up, by name, and the webhook they page."""

    hook: Recorder
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ams: dict[str, str] = field(default_factory=dict)

    def kill9(self, name: str) -> None:
        """``kill -9`` one process."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=10)

    def pages(self, status: str, since: float) -> int:
        """How many ``status`` notifications arrived since ``since``."""
        return sum(
            1
            for r in self.hook.received("/page")
            if r.received_at >= since and r.json()["status"] == status
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, FaultTarget]]:
    alertmanager = need_binary("prometheus-alertmanager")
    web = {n: free_port() for n in ("am1", "am2")}
    gossip = {n: free_port() for n in ("am1", "am2")}
    (tmp_path / "rules.yml").write_text(RULES)
    with FaultTarget() as target, receiver() as hook, contextlib.ExitStack() as stack:
        (tmp_path / "am.yml").write_text(AM_CONFIG.format(url=hook.url))
        out = Cluster(hook)
        for name, other in (("am1", "am2"), ("am2", "am1")):
            base = f"http://127.0.0.1:{web[name]}"
            out.procs[name] = stack.enter_context(
                started(
                    [
                        alertmanager,
                        f"--config.file={tmp_path / 'am.yml'}",
                        f"--storage.path={tmp_path / name}",
                        f"--web.listen-address=127.0.0.1:{web[name]}",
                        f"--cluster.listen-address=127.0.0.1:{gossip[name]}",
                        f"--cluster.peer=127.0.0.1:{gossip[other]}",
                        f"--cluster.peer-timeout={PEER_TIMEOUT}",
                        "--cluster.gossip-interval=100ms",
                        "--cluster.pushpull-interval=2s",
                        "--log.level=warn",
                    ],
                    ready=ready_at(base),
                    timeout=60,
                )
            )
            out.ams[name] = base
        wait_until(
            lambda: all(
                len(httpx.get(f"{b}/api/v2/status", timeout=2).json()["cluster"]["peers"]) == 2
                for b in out.ams.values()
            ),
            timeout=30,
            what="the two Alertmanagers see each other",
        )
        targets = ", ".join(f'"127.0.0.1:{p}"' for p in web.values())
        for name in ("sw1", "sw2"):
            port = free_port()
            config = tmp_path / f"{name}.yaml"
            config.write_text(
                textwrap.dedent(
                    f"""\
                    listen: 127.0.0.1:{port}
                    data_dir: {tmp_path / name}
                    global:
                      scrape_interval: 1s
                      scrape_timeout: 1s
                      evaluation_interval: 1s
                    rule_files: [rules.yml]
                    scrape_configs:
                      - job_name: target
                        static_configs:
                          - targets: ["{target.address}"]
                    alerting:
                      alertmanagers:
                        - static_configs:
                            - targets: [{targets}]
                    """
                )
            )
            base = f"http://127.0.0.1:{port}"
            out.procs[name] = stack.enter_context(
                started(
                    soulwatch_command("run", "-c", str(config)),
                    env=subprocess_env(),
                    ready=ready_at(base),
                    timeout=60,
                )
            )
        yield out, target


def _episode(c: Cluster, target: FaultTarget) -> tuple[int, int]:
    """Switch the fault on, then off; ``(firing pages, resolved pages)`` it gave."""
    since = time.time()
    target.on = True
    wait_until(lambda: c.pages("firing", since), timeout=20, what="the page")
    # Every Alertmanager still running holds the alert: the cluster, not luck, sent it once.
    for name, base in c.ams.items():
        if name in c.procs:
            wait_until(
                lambda base=base: any(
                    a["labels"]["alertname"] == "Broken"
                    for a in httpx.get(f"{base}/api/v2/alerts", timeout=2).json()
                ),
                timeout=10,
                what=f"{name} holds the alert",
            )
    time.sleep(SETTLE)
    target.on = False
    wait_until(lambda: c.pages("resolved", since), timeout=20, what="the resolve")
    time.sleep(SETTLE)
    return c.pages("firing", since), c.pages("resolved", since)


def test_two_soulwatch_and_an_alertmanager_cluster_page_once(cluster):
    c, target = cluster
    assert _episode(c, target) == (1, 1)
    c.kill9("sw1")
    assert _episode(c, target) == (1, 1)
    c.kill9("am1")
    assert _episode(c, target) == (1, 1)
