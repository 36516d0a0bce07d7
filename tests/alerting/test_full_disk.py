"""A full disk: soulwatch says so, keeps paging from memory, and catches up.

The data directory is a small tmpfs mounted by the test. Once a filler file
has taken every free byte, the TSDB's WAL, the alert state and the outbox
cannot be written. ``/health`` and ``/ready`` must say so (503, naming the
failing stores) and so must ``soulwatch_store_failing``; a fault that starts
meanwhile must still page, and the page must say the store is failing. A
new silence is refused with a 503 that says why, while the silences already
stored stay listed. Once the filler is deleted, health returns by itself and
what memory held is written: a restart neither pages the same episode again
nor forgets to resolve it.
"""

from __future__ import annotations

import httpx
import pytest

from tests.alerting.run_support import (
    FaultTarget,
    MonitorProcess,
    Timing,
    pages,
    receiver,
    write_config,
)
from tests.disk import fill, small_filesystem
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

TOKEN = "silencer-token-0123456789"


def _health(proc: MonitorProcess) -> tuple[int, dict]:
    response = proc.get("/health")
    return response.status_code, response.json()


def _silence(proc: MonitorProcess, alertname: str) -> httpx.Response:
    body = {
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": False}],
        "startsAt": "2000-01-01T00:00:00Z",
        "endsAt": "2999-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": f"mute {alertname}",
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.post(f"{proc.base}/api/v2/silences", json=body, headers=headers, timeout=5)


def _silenced(proc: MonitorProcess) -> list[str]:
    listed = proc.get("/api/v2/silences").json()
    return sorted(s["matchers"][0]["value"] for s in listed)


def test_full_disk_health_fails_paging_goes_on_and_it_recovers(tmp_path):
    with (
        small_filesystem(tmp_path / "disk") as disk,
        FaultTarget() as target,
        receiver() as hook,
    ):
        # A resolve goes out at its group's next tick: keep that short.
        timing = Timing(group_interval="5s")
        config = write_config(
            tmp_path, target.address, hook.url, data_dir=disk / "data", timing=timing
        )
        with config.open("a") as f:
            f.write(f"auth:\n  tokens:\n    - {{name: ops, token: {TOKEN}, scopes: [silences]}}\n")
        proc = MonitorProcess(config)
        try:
            proc.start()
            assert _health(proc)[0] == 200
            assert _silence(proc, "Before").status_code == 200

            fill(disk / "filler")
            _, body = wait_until(
                lambda: (h := _health(proc))[0] == 503 and "wal" in h[1]["failing_stores"] and h,
                timeout=30,
                what="/health reporting the WAL on the full disk",
            )
            assert body["status"] == "degraded"
            assert "wal" in body["failing_stores"], body
            assert proc.get("/-/ready").status_code == 503
            metrics = proc.get("/metrics").text
            assert 'soulwatch_store_failing{store="wal"} 1.0' in metrics

            # A new silence is refused, saying why; the stored one is still there.
            refused = _silence(proc, "During")
            assert refused.status_code == 503, refused.text
            assert refused.json().startswith(
                f"cannot store the silence: no space left on device (data dir {disk / 'data'}"
            ), refused.text
            status, body = _health(proc)
            assert status == 503
            assert body["failing_stores"]["silences"] == refused.json()
            assert body["failing_since"]["silences"] > 0
            assert 'soulwatch_store_failing{store="silences"} 1.0' in proc.get("/metrics").text
            assert _silenced(proc) == ["Before"], "nothing stored is lost"

            # A fault starting now still pages, and the page says why it may be late to repeat.
            target.on = True
            wait_until(lambda: pages(hook), timeout=30, what="the page on a full disk")
            [(state, _, _, page)] = pages(hook)
            assert state == "firing"
            warning = page["alerts"][0]["annotations"]["soulwatch_store_failing"]
            assert "wal" in warning
            assert proc.get("/api/v1/alerts").json()["data"]["alerts"], "evaluated from memory"

            # Space is back: health returns, and what memory held is written.
            (disk / "filler").unlink()
            wait_until(lambda: _health(proc)[0] == 200, timeout=30, what="health back")
            assert proc.get("/-/ready").status_code == 200
            metrics = proc.get("/metrics").text
            assert 'soulwatch_store_failing{store="wal"} 0.0' in metrics
            assert 'soulwatch_store_failing{store="outbox"} 0.0' in metrics
            assert 'soulwatch_store_failing{store="silences"} 0.0' in metrics
            assert _silence(proc, "After").status_code == 200
            assert _silenced(proc) == ["After", "Before"]

            # A restart: the episode was recorded as paged (no second page) and
            # still resolves when the fault ends.
            proc.stop()
            proc.start()
            target.on = False
            wait_until(lambda: len(pages(hook)) >= 2, timeout=30, what="the resolve")
        finally:
            proc.stop()
    assert [p[0] for p in pages(hook)] == ["firing", "resolved"]
