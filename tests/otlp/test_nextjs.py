"""A real Next.js app (the shape of Soulcaster's dashboard) adopting soulwatch as docs/rum.md says.

Its ``instrumentation.ts`` equivalent registers ``@vercel/otel``; its root
layout loads the browser agent; its error boundary reports React crashes.
Built and started for real, visited by real headless Chromium: the server's
route metrics arrive over OTLP and the browser's over the RUM intake.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, need_binary, started
from tests.rum.support import monitor, value, wait_value

APP = Path(__file__).parent / "nextjs_app"
KEY = "nextjs-dashboard-key"
TOKEN = "nextjs-otlp-token-1"


def _soulwatch(tmp_path: Path, origin: str) -> contextlib.AbstractContextManager[httpx.Client]:
    config = f"""\
otlp: {{enabled: true, interval: 1s}}
rum:
  interval: 1s
  sites:
    - name: dashboard
      key: {KEY}
      origins: ["{origin}"]
      routes: ["/", "/crash", "/api/clusters/[id]"]
auth:
  tokens:
    - {{name: dashboard-otel, token_env: OTLP_TOKEN, scopes: [push]}}
"""
    return monitor(tmp_path, config, OTLP_TOKEN=TOKEN)


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_real_nextjs_app_reports_its_routes_over_otlp_and_its_users_through_the_agent(
    tmp_path: Path,
) -> None:
    npm = need_binary("npm")
    chromium = need_binary("chromium")
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    node_env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    _run([npm, "install", "--no-audit", "--no-fund"], app, node_env, 600)
    next_bin = str(app / "node_modules" / ".bin" / "next")
    with _soulwatch(tmp_path, origin) as api:
        sw = str(api.base_url).rstrip("/")
        build_env = {**node_env, "SOULWATCH_URL": sw, "SOULWATCH_RUM_KEY": KEY}
        _run([next_bin, "build"], app, build_env, 600)
        run_env = {
            **build_env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sw,
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {TOKEN}",
        }
        ready = lambda: httpx.get(f"{origin}/api/clusters/1", timeout=2).status_code == 200  # noqa: E731
        with started(
            [next_bin, "start", "-p", str(port), "-H", "127.0.0.1"],
            env=run_env,
            cwd=str(app),
            ready=ready,
            timeout=60,
        ):
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                try:
                    page = browser.new_page()
                    page.goto(f"{origin}/")
                    page.wait_for_function(
                        "document.getElementById('state').textContent === 'loaded'"
                    )
                    page.goto(f"{origin}/crash")
                    page.wait_for_function("document.title === 'reported'")
                    page.goto("about:blank")
                finally:
                    browser.close()

            # The server's spans, by Next.js's own route names.
            route = 'job="dashboard",http_route="/api/clusters/[id]"'
            count = "http_server_request_duration_seconds_count"
            wait_value(
                api, f'sum({count}{{{route},http_response_status_code="500"}})', 1, timeout=60
            )
            # One from the readiness check, one from the page.
            assert value(api, f'sum({count}{{{route},http_response_status_code="200"}})') == 2

            # The browser's view of the same calls, and the crash its error boundary reported.
            site = 'site="dashboard"'
            api_count = "rum_api_request_duration_seconds_count"
            wait_value(api, f'{api_count}{{{site},route="/api/clusters/[id]",code="500"}}', 1)
            assert value(api, f'{api_count}{{{site},route="/api/clusters/[id]",code="200"}}') == 1
            wait_value(api, f'rum_errors_total{{{site},page="/crash",kind="react"}}', 1)
            assert value(api, f'rum_page_views_total{{{site},page="/"}}') == 1
            assert value(api, f'rum_lcp_seconds_count{{{site},page="/"}}') == 1
