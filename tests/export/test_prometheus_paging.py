"""The export, run by a real Prometheus 2.42 and a real Alertmanager, pages on a real fault.

soulwatch's config scrapes a backend, probes its ``/health`` and routes P1
alerts to a webhook whose bearer token is a secret. After ``soulwatch export
prometheus``, Prometheus runs ``prometheus.yml`` (scraping the backend itself
and federating the probe from soulwatch, which runs the exported
``soulwatch-exporter.yaml``), Alertmanager runs ``alertmanager.yml`` with the
token filled into its ``*_file``. The backend goes away: both alerts reach the
webhook through Alertmanager, carrying the token.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import (
    Recorder,
    free_port,
    need_binary,
    soulwatch_command,
    started,
    subprocess_env,
)

TOKEN = "hook-bearer-token-1"

RULES = """\
groups:
  - name: backend
    rules:
      - alert: BackendScrapeFailing
        expr: up{job="backend"} == 0
        labels: {priority: P1}
      - alert: BackendHealthFailing
        expr: probe_success{job="backend-health"} == 0
        labels: {priority: P1}
        annotations: {summary: "{{ $labels.instance }} is not healthy"}
"""


def _config(tmp_path: Path, port: int, backend: str, hook: Recorder) -> Path:
    (tmp_path / "rules.yml").write_text(RULES)
    config = tmp_path / "soulwatch.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"data_dir: {tmp_path / 'sw-data'}\n"
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        f"  - job_name: backend\n    static_configs: [{{targets: ['{backend}']}}]\n"
        "probes:\n"
        "  - job_name: backend-health\n"
        "    prober: http\n"
        f"    targets: ['http://{backend}/health']\n"
        "    interval: 1s\n"
        "    timeout: 1s\n"
        "alerting:\n"
        "  route:\n"
        "    receiver: page\n"
        "    group_by: [alertname]\n"
        "    group_wait: 0s\n"
        "    group_interval: 1s\n"
        "  receivers:\n"
        "    - name: page\n"
        "      webhook_configs:\n"
        f"        - url: {hook.url}/hook\n"
        "          http_config: {bearer_token_env: HOOK_TOKEN}\n"
    )
    return config


def _query(url: str, expr: str) -> list[float]:
    body: dict[str, Any] = httpx.get(
        f"{url}/api/v1/query", params={"query": expr}, timeout=5
    ).json()
    return [float(r["value"][1]) for r in body["data"]["result"]]


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError):
            if predicate():
                return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _ok(url: str) -> bool:
    return httpx.get(url, timeout=1).status_code == 200


def test_prometheus_and_alertmanager_from_the_export_page_when_the_backend_goes_down(
    tmp_path: Path,
) -> None:
    prometheus, alertmanager = need_binary("prometheus"), need_binary("prometheus-alertmanager")
    sw_port, prom_port, am_port = free_port(), free_port(), free_port()
    # The backend: a process serving /metrics and /health (killing it is the fault).
    site = tmp_path / "site"
    site.mkdir()
    (site / "metrics").write_text("backend_requests_total 7\n")
    (site / "health").write_text("ok\n")
    backend = f"127.0.0.1:{free_port()}"
    serve = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", backend.split(":")[1]]
    with Recorder() as hook, contextlib.ExitStack() as backend_up:
        backend_up.enter_context(
            started(serve, cwd=str(site), ready=lambda: _ok(f"http://{backend}/health"))
        )
        config = _config(tmp_path, sw_port, backend, hook)
        run = subprocess.run(
            soulwatch_command(
                "export",
                "prometheus",
                "out",
                "-c",
                str(config),
                "--alertmanager",
                f"127.0.0.1:{am_port}",
                "--soulwatch",
                f"127.0.0.1:{sw_port}",
            ),
            cwd=tmp_path,
            env=subprocess_env(HOOK_TOKEN=TOKEN),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        out = tmp_path / "out"
        assert TOKEN not in (out / "alertmanager.yml").read_text()
        # The operator puts the secret where the export says.
        (out / "secrets").mkdir()
        (out / "secrets" / "page_webhook_0_bearer_token").write_text(TOKEN + "\n")

        exporter = soulwatch_command("run", "-c", str(out / "soulwatch-exporter.yaml"))
        with (
            started(
                exporter,
                env=subprocess_env(),
                ready=lambda: _ok(f"http://127.0.0.1:{sw_port}/health"),
                timeout=60,
            ),
            started(
                [
                    alertmanager,
                    f"--config.file={out / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                ready=lambda: _ok(f"http://127.0.0.1:{am_port}/-/ready"),
                timeout=60,
            ),
            started(
                [
                    prometheus,
                    f"--config.file={out / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                ready=lambda: _ok(f"http://127.0.0.1:{prom_port}/-/ready"),
                timeout=60,
            ),
        ):
            prom = f"http://127.0.0.1:{prom_port}"
            # Healthy: Prometheus scrapes the backend and federates soulwatch's probe.
            _wait(lambda: _query(prom, 'up{job="backend"}') == [1.0], 30, "the backend scraped")
            _wait(
                lambda: _query(prom, 'probe_success{job="backend-health"}') == [1.0],
                30,
                "the probe federated from soulwatch",
            )
            assert not hook.received("/hook")

            backend_up.close()  # the fault: the backend is gone

            def paged() -> set[str]:
                return {
                    a["labels"]["alertname"]
                    for r in hook.received("/hook")
                    for a in r.json()["alerts"]
                    if a["status"] == "firing"
                }

            _wait(
                lambda: {"BackendScrapeFailing", "BackendHealthFailing"} <= paged(),
                60,
                "the pages through Alertmanager",
            )
            request = hook.received("/hook")[0]
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
            health = next(
                a
                for r in hook.received("/hook")
                for a in r.json()["alerts"]
                if a["labels"]["alertname"] == "BackendHealthFailing"
            )
            assert health["labels"]["instance"] == f"http://{backend}/health"
            assert health["annotations"]["summary"] == f"http://{backend}/health is not healthy"
