"""Ruler mode against a real VictoriaMetrics: rules read only the remote store.

The platform's data is pushed into VictoriaMetrics with its import API;
soulwatch scrapes nothing. With ``query.remote`` pointing at VictoriaMetrics,
the Soulcaster rule pack's alerts fire from that data and page through
soulwatch's routing to a recording webhook; a recording rule's output and
``ALERTS`` arrive back in VictoriaMetrics through ``remote_write``. Then
VictoriaMetrics stops: evaluations fail and are counted, ``/health`` names
the remote, and the firing alerts hold (no "resolved" is sent), also, on a
simulated clock, through an outage four times the resolve timeout.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from prometheus_client.parser import text_string_to_metric_families

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.scenario.recording import RecordingTransport, SentNotification, recording
from soulwatch.scenario.runner import SETTLE_TURNS, under_test
from soulwatch.service import Monitor, run_inline
from tests.helpers import Recorder, free_port, headless_chromium
from tests.remote.receivers import VictoriaMetricsReceiver, soulwatch_running, wait_for

PRESET_RULES = Path(str(files("soulwatch.presets.soulcaster") / "rules"))

RECORDING_RULES = """\
groups:
  - name: ruler-test
    interval: 1s
    rules:
      - record: project:agent_jobs_failed:sum
        expr: sum by (project_id) (soulcaster_agent_jobs_finished_total{outcome="failed"})
"""


def _import(vm: VictoriaMetricsReceiver, now: float) -> None:
    """Fifteen minutes of a failing agent fleet and a spent E2B quota, into VictoriaMetrics only."""
    lines = []
    start = now - 14 * 60
    for i in range(29):  # every 30 s up to now
        t_ms = round((start + 30 * i) * 1000)
        failed = min(6, i // 4)  # six failures over the window, one success
        lines.append(
            'soulcaster_agent_jobs_finished_total{project_id="p1",outcome="failed",'
            f'category="sandbox_timeout"}} {failed} {t_ms}'
        )
        lines.append(
            'soulcaster_agent_jobs_finished_total{project_id="p1",outcome="succeeded",'
            f'category=""}} {1 if i > 10 else 0} {t_ms}'
        )
        lines.append(f"e2b_sandbox_hours_used 92 {t_ms}")
        lines.append(f"e2b_sandbox_hours_quota 100 {t_ms}")
    r = httpx.post(
        f"{vm.url}/api/v1/import/prometheus", content="\n".join(lines) + "\n", timeout=30
    )
    assert r.status_code == 204, r.text
    httpx.get(f"{vm.url}/internal/force_flush", timeout=30)


def _config(tmp_path: Path, vm: VictoriaMetricsReceiver, hook: Recorder, port: int) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(PRESET_RULES, rules, ignore=shutil.ignore_patterns("tests"))
    (rules / "ruler-test.yml").write_text(RECORDING_RULES)
    config = tmp_path / "soulwatch.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"data_dir: {tmp_path / 'sw-data'}\n"
        "global: {evaluation_interval: 1s}\n"
        f"rule_files: [{rules}/*.yml]\n"
        f"query:\n  remote: {{url: {vm.url}, timeout: 2s}}\n"
        "remote_write:\n"
        f"  - url: {vm.write_url}\n"
        "    queue_config: {batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 500ms}\n"
        "alerting:\n"
        "  route:\n"
        "    receiver: hook\n"
        "    group_by: [alertname]\n"
        "    group_wait: 0s\n"
        "    group_interval: 1s\n"
        "  receivers:\n"
        f"    - name: hook\n      webhook_configs: [{{url: '{hook.url}/hook'}}]\n"
    )
    return config


def _explore_in_browser(url: str, expr: str) -> list[str]:
    """Explore's result rows for ``expr`` over 15 minutes, once its chart is drawn."""
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/explore?{urlencode({'expr': expr, 'range': '15m'})}")
        page.wait_for_selector("figure.chart canvas", timeout=10_000)
        rows = page.locator("#result-table tbody tr")
        return [str(rows.nth(i).inner_text()) for i in range(rows.count())]


def _notifications(hook: Recorder) -> list[dict[str, Any]]:
    return [r.json() for r in hook.received("/hook")]


def _firing(port: int) -> set[str]:
    body = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5).json()
    return {a["labels"]["alertname"] for a in body["data"]["alerts"] if a["state"] == "firing"}


def _failures(port: int, group: str) -> float:
    """Failed evaluations of the rule groups whose key names ``group``."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "soulwatch_rule_evaluation_failures_total"
        and group in s.labels.get("rule_group", "")
    )


def test_rule_pack_pages_from_victoriametrics_and_holds_when_it_is_down(tmp_path: Path) -> None:
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    with Recorder() as hook, contextlib.ExitStack() as vm_running:
        config = _config(tmp_path, vm, hook, port)
        vm_running.enter_context(vm.running())
        with soulwatch_running(config, port):
            _import(vm, time.time())

            # The pack's P1 (AgentFailureSpike, over increase()[15m]) and P2 rules fire from
            # VictoriaMetrics' data and reach the webhook through soulwatch's routing.
            def paged() -> set[str]:
                return {
                    a["labels"]["alertname"]
                    for n in _notifications(hook)
                    if n["status"] == "firing"
                    for a in n["alerts"]
                }

            wait_for(lambda: {"AgentFailureSpike", "E2BQuotaWarning"} <= paged(), 60, "the pages")
            spike = next(
                a
                for n in _notifications(hook)
                for a in n["alerts"]
                if a["labels"]["alertname"] == "AgentFailureSpike"
            )
            assert spike["labels"]["priority"] == "P1"
            assert "of agent jobs are failing" in spike["annotations"]["summary"]

            # The console's API answers from VictoriaMetrics too (soulwatch stores none of it).
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/query",
                params={"query": "e2b_sandbox_hours_used"},
                timeout=10,
            ).json()
            assert [float(r["value"][1]) for r in answer["data"]["result"]] == [92.0]
            # ... and so does Explore, in a browser: the chart and the table, from VM's data.
            rows = _explore_in_browser(f"http://127.0.0.1:{port}", "e2b_sandbox_hours_used")
            assert len(rows) == 1
            assert rows[0].split() == ["e2b_sandbox_hours_used", "92"], rows

            # A recording rule's output and ALERTS are written back to VictoriaMetrics.
            wait_for(
                lambda: (
                    vm.query("project:agent_jobs_failed:sum", time.time())
                    == [({"__name__": "project:agent_jobs_failed:sum", "project_id": "p1"}, 6.0)]
                ),
                30,
                "the recording rule's series in VictoriaMetrics",
            )
            for series in ("ALERTS", "ALERTS_FOR_STATE"):
                wait_for(
                    lambda s=series: vm.query(s + '{alertname="AgentFailureSpike"}', time.time()),
                    30,
                    f"{series} in VictoriaMetrics",
                )
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert health.json()["failing_stores"] == {}, health.text
            assert {"AgentFailureSpike", "E2BQuotaWarning"} <= _firing(port)

            # VictoriaMetrics goes away: every evaluation fails, and is counted...
            vm_running.close()
            before = _failures(port, "ruler-test")
            wait_for(
                lambda: _failures(port, "ruler-test") >= before + 3,
                30,
                "failed evaluations of the recording group",
            )
            # ... /health says so ...
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert health.status_code == 503
            assert health.json()["status"] == "degraded"
            assert "remote_query" in health.json()["failing_stores"]
            # ... and no data is not "resolved": the alerts hold, nothing resolved is sent.
            assert {"AgentFailureSpike", "E2BQuotaWarning"} <= _firing(port)
            assert not [n for n in _notifications(hook) if n["status"] == "resolved"]


def _import_quota(vm: VictoriaMetricsReceiver, start: float, minutes: int) -> None:
    lines = []
    for i in range(minutes * 2 + 1):
        t_ms = round((start + 30 * i) * 1000)
        lines += [f"e2b_sandbox_hours_used 92 {t_ms}", f"e2b_sandbox_hours_quota 100 {t_ms}"]
    r = httpx.post(f"{vm.url}/api/v1/import/prometheus", content="\n".join(lines) + "\n")
    assert r.status_code == 204, r.text
    httpx.get(f"{vm.url}/internal/force_flush", timeout=30)


async def test_an_outage_longer_than_resolve_timeout_resolves_nothing(tmp_path: Path) -> None:
    """On a simulated clock: VictoriaMetrics is away for 20 minutes, four resolve timeouts.

    The evaluator re-sends held alerts every resend delay even while their
    evaluation fails, so the dispatcher's resolve timeout never ends them.
    """
    start = float(int(time.time()) - 3600)  # an hour ago: the data is in the past for VM
    vm = VictoriaMetricsReceiver(tmp_path)
    config = parse_config(
        f"global: {{evaluation_interval: 30s}}\n"
        f"rule_files: [{PRESET_RULES / 'agents.yml'}]\n"
        f"query: {{remote: {{url: {vm.url}, timeout: 2s}}}}\n"
        f"remote_write: [{{url: {vm.write_url}}}]\n"
        "alerting:\n"
        "  route: {receiver: hook, group_wait: 0s, group_interval: 30s, repeat_interval: 1h}\n"
        "  receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:9/hook'}]}]\n",
        "soulwatch.yaml",
    )
    clock = SimulatedClock(start=start)
    sent: list[SentNotification] = []
    monitor = Monitor(
        under_test(config, tmp_path / "sw-data"),
        clock=clock,
        transport=RecordingTransport(),
        run_blocking=run_inline,
        wrap_notifiers=lambda n: recording(n, sent, clock=clock, start=start),
    )
    with contextlib.ExitStack() as vm_running:
        vm_running.enter_context(vm.running())
        _import_quota(vm, start, 40)
        await monitor.start()
        try:
            await clock.advance(120, settle=SETTLE_TURNS)
            assert [(s.status.value, s.alertname) for s in sent] == [("firing", "E2BQuotaWarning")]
            vm_running.close()
            for _ in range(40):  # twenty minutes, a step at a time
                await clock.advance(30, settle=SETTLE_TURNS)
            assert monitor.health()["failing_stores"].keys() == {"remote_query"}
            # Held: still firing, and neither a "resolved" nor anything else went out.
            assert [(s.status.value, s.alertname) for s in sent] == [("firing", "E2BQuotaWarning")]
            firing = [a for a in monitor.parts.rules.active_alerts() if a.state.value == "firing"]
            assert [a.labels.get("alertname") for a in firing] == ["E2BQuotaWarning"]
            # Back (same data): the next evaluation reaches it, /health is clear again.
            vm_running.enter_context(vm.running())
            await clock.advance(60, settle=SETTLE_TURNS)
            assert monitor.health()["failing_stores"] == {}
            assert len(sent) == 1
        finally:
            await monitor.stop()


def test_series_and_label_pickers_list_what_victoriametrics_holds(tmp_path: Path) -> None:
    """Grafana's and Explore's pickers in ruler mode: the names are VictoriaMetrics' own."""
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    config = tmp_path / "soulwatch.yaml"
    now = time.time()
    window = {"start": f"{now - 3600:.3f}", "end": f"{now + 60:.3f}"}
    # soulwatch's own series go elsewhere: VictoriaMetrics holds the platform's data alone.
    with Recorder() as elsewhere, vm.running():
        config.write_text(
            f"listen: 127.0.0.1:{port}\n"
            f"data_dir: {tmp_path / 'sw-data'}\n"
            f"query:\n  remote: {{url: {vm.url}, timeout: 2s}}\n"
            f"remote_write: [{{url: '{elsewhere.url}/write'}}]\n"
        )
        with soulwatch_running(config, port):
            _pickers_list_vm_data(vm, port, now, window)


def _pickers_list_vm_data(
    vm: VictoriaMetricsReceiver, port: int, now: float, window: dict[str, str]
) -> None:
    """soulwatch's listings and Explore's completion against VictoriaMetrics' own."""
    _import(vm, now)

    def both(path: str, params: dict[str, str]) -> tuple[Any, Any]:
        ours = httpx.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=10)
        theirs = httpx.get(f"{vm.url}{path}", params=params, timeout=10)
        assert ours.status_code == 200, ours.text
        return ours.json()["data"], theirs.json()["data"]

    names, vm_names = both("/api/v1/label/__name__/values", window)
    assert (
        names
        == vm_names
        == [
            "e2b_sandbox_hours_quota",
            "e2b_sandbox_hours_used",
            "soulcaster_agent_jobs_finished_total",
        ]
    )
    labels, vm_labels = both("/api/v1/labels", window)
    assert labels == sorted(vm_labels)
    assert {"__name__", "project_id", "outcome", "category"} <= set(labels)
    match = {**window, "match[]": 'soulcaster_agent_jobs_finished_total{outcome="failed"}'}
    series, vm_series = both("/api/v1/series", match)
    assert (
        series
        == vm_series
        == [
            {
                "__name__": "soulcaster_agent_jobs_finished_total",
                "category": "sandbox_timeout",
                "outcome": "failed",
                "project_id": "p1",
            }
        ]
    )
    outcomes, _ = both(
        "/api/v1/label/outcome/values",
        {**window, "match[]": "soulcaster_agent_jobs_finished_total"},
    )
    assert outcomes == ["failed", "succeeded"]
    # Explore's completion offers a metric that lives only in VictoriaMetrics.
    completion = httpx.get(
        f"http://127.0.0.1:{port}/explore/complete", params={"before": "e2b_sand"}, timeout=10
    )
    assert completion.json()["suggestions"] == [
        "e2b_sandbox_hours_quota",
        "e2b_sandbox_hours_used",
    ]
    inside = httpx.get(
        f"http://127.0.0.1:{port}/explore/complete",
        params={"before": 'soulcaster_agent_jobs_finished_total{outcome="f'},
        timeout=10,
    )
    assert inside.json()["suggestions"] == ["failed"]
