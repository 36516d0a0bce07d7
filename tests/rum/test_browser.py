"""Real headless Chromium loads pages that use the agent; the metrics appear in soulwatch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.helpers import UvicornThread, free_port, headless_chromium
from tests.rum.support import KEY, rum_monitor, value, wait_value

_TAG = '<script src="{sw}/rum/v1/agent.js" data-site="{key}" defer></script>'
_PAGES = {
    # A page with its own /api/* calls: one succeeds, one fails.
    "/": """<h1>Clusters</h1><p id="out">loading</p>
        <script>
          addEventListener("load", async () => {
            await fetch("/api/clusters");
            await fetch("/api/broken");
            document.getElementById("out").textContent = "loaded";
          });
        </script>""",
    # The largest content appears only after 3.2 s: LCP lands between 3 and 4 s.
    "/slow": """<p>a</p>
        <script>
          setTimeout(() => {
            const p = document.createElement("p");
            p.style.fontSize = "48px";
            p.textContent = "The clusters finally loaded, with a very long heading that is large.";
            document.body.appendChild(p);
            document.title = "painted";
          }, 3200);
        </script>""",
    # An uncaught error, an unhandled rejection and what Next.js's error.tsx reports.
    "/crash": """<p>crash</p>
        <script>
          addEventListener("load", () => {
            setTimeout(() => { throw new Error("uncaught"); }, 0);
            Promise.reject(new Error("rejected"));
            window.soulwatch.reportError(new Error("react render failed"));
            setTimeout(() => { document.title = "crashed"; }, 50);
          });
        </script>""",
}
_MODULE_PAGE = """<!doctype html><html><head><title>module</title></head><body><p>module</p>
    <script type="module">
      import {{ init }} from "{sw}/rum/v1/agent.mjs";
      init({{ site: "{key}" }});
      document.title = "ready";
    </script></body></html>"""


def _dashboard(soulwatch: str) -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        body = _PAGES[request.url.path]
        tag = _TAG.format(sw=soulwatch, key=KEY)
        return HTMLResponse(
            f"<!doctype html><html><head><title>t</title>{tag}</head><body>{body}</body></html>"
        )

    async def module(request: Request) -> HTMLResponse:
        return HTMLResponse(_MODULE_PAGE.format(sw=soulwatch, key=KEY))

    async def clusters(request: Request) -> JSONResponse:
        return JSONResponse([{"id": "c1"}])

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"error": "boom"}, status_code=500)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[
            *(Route(path, page) for path in _PAGES),
            Route("/module", module),
            Route("/api/clusters", clusters),
            Route("/api/broken", broken),
            Route("/favicon.ico", favicon),
        ]
    )


@pytest.fixture
def browser() -> Any:
    with headless_chromium("--disable-background-networking") as instance:
        yield instance


def test_real_page_loads_report_views_vitals_errors_and_api_calls(
    tmp_path: Path, browser: Any
) -> None:
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    with rum_monitor(tmp_path, origin) as api:
        sw = str(api.base_url).rstrip("/")
        with UvicornThread(_dashboard(sw), port=page_port):
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(f"{origin}/")
            page.wait_for_function("document.getElementById('out').textContent === 'loaded'")
            page.goto(f"{origin}/slow")
            page.wait_for_function("document.title === 'painted'", timeout=10_000)
            time.sleep(0.3)  # let the paint of the late element happen before leaving
            page.goto(f"{origin}/crash")
            page.wait_for_function("document.title === 'crashed'")
            page.goto(f"{origin}/module")
            page.wait_for_function("document.title === 'ready'")
            page.goto("about:blank")  # pagehide: the last batches leave by beacon

            site = 'site="dashboard"'
            for path in ("/", "/slow", "/crash", "/module"):
                wait_value(api, f'rum_page_views_total{{{site},page="{path}"}}', 1)
            # The slow page's LCP is between 3 and 4 seconds.
            wait_value(api, f'rum_lcp_seconds_count{{{site},page="/slow"}}', 1)
            assert value(api, f'rum_lcp_seconds_bucket{{{site},page="/slow",le="3.0"}}') == 0
            assert value(api, f'rum_lcp_seconds_bucket{{{site},page="/slow",le="4.0"}}') == 1
            assert value(api, f'rum_lcp_seconds_bucket{{{site},page="/",le="2.5"}}') == 1
            for metric in ("rum_fcp_seconds_count", "rum_ttfb_seconds_count", "rum_cls_count"):
                assert value(api, f'{metric}{{{site},page="/"}}') == 1, metric
            # The three kinds of errors of the crash page.
            for kind in ("error", "unhandledrejection", "react"):
                wait_value(api, f'rum_errors_total{{{site},page="/crash",kind="{kind}"}}', 1)
            # The page's /api/* calls, with their status codes.
            api_count = "rum_api_request_duration_seconds_count"
            assert value(api, f'{api_count}{{{site},route="/api/broken",code="500"}}') == 1
            assert value(api, f'{api_count}{{{site},route="/api/clusters",code="200"}}') == 1
            # One tab, one session.
            assert value(api, f"rum_active_sessions{{{site}}}") == 1
            # Only the deliberate errors of /crash and the 500 reached the console.
            deliberate = ("status of 500", "Error: uncaught", "Error: rejected")
            unexpected = [e for e in errors if not any(d in e for d in deliberate)]
            assert unexpected == [], unexpected
