"""Cost of the SDK's secret scrubbing per log line and per Sentry event, beside sentry-sdk's own.

Three inputs, each scrubbed many times in a row:

* an access-log line as the log pipeline holds it (eleven fields, no secret:
  the common case, which the literal prefilter lets skip every pattern);
* an error line with a secret-bearing message and exception value;
* a Sentry event (request with headers, cookies and a JSON body, exception
  with frame variables, breadcrumbs).

Columns: soulwatch's ``redact()`` (keys and free text), sentry-sdk's
``EventScrubber`` (keys only, the Sentry event alone: it scrubs Sentry's
shapes, not log lines), and the ratio. The best of ``--repetitions`` runs
counts, to keep other work on a shared machine out of the figures.

    .venv/bin/python benchmarks/log_scrubbing.py [--iterations 20000] [--repetitions 5]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

from soulwatch.instrument.redact import redact

ACCESS_LINE = {
    "event": "request",
    "client": "127.0.0.1:53412",
    "method": "GET",
    "path": "/clusters/7c1d/jobs?limit=10",
    "http_version": "1.1",
    "status": 200,
    "logger": "uvicorn.access",
    "level": "info",
    "timestamp": "2026-12-04T17:44:27.123456Z",
    "service": "backend",
    "request_id": "4f1c2a9e8b7d4c3a",
}
ERROR_LINE = {
    "event": "reddit poll failed: 503 token=abcdef123456789",
    "exception": [
        {
            "exc_type": "HTTPError",
            "exc_value": "GET https://oauth.reddit.com/r/x?access_token=zzz999 answered 503",
            "frames": [{"filename": "poller.py", "lineno": 42, "name": "poll_once"}],
        }
    ],
    "logger": "poller",
    "level": "error",
    "timestamp": "2026-12-04T17:44:27.123456Z",
    "service": "reddit-poller",
}
SENTRY_EVENT: dict[str, Any] = {
    "level": "error",
    "request": {
        "url": "http://backend/signup",
        "method": "POST",
        "headers": {"Authorization": "Bearer eyJhbGciOi.x.y", "Accept": "*/*"},
        "cookies": {"session": "s3cr3t"},
        "data": {"email": "ada@example.com", "password": "hunter2", "plan": "pro"},
    },
    "exception": {
        "values": [
            {
                "type": "RuntimeError",
                "value": "login failed password=hunter2 for ada@example.com",
                "stacktrace": {
                    "frames": [
                        {
                            "function": "signup",
                            "vars": {
                                "api_token": "'token=abcdef123456789'",
                                "body": "{'email': 'ada@example.com', 'plan': 'pro'}",
                            },
                        }
                    ]
                },
            }
        ]
    },
    "breadcrumbs": {"values": [{"message": "calling billing with api_key: sk-live-1234567890"}]},
}


def _best(run: Callable[[], None], iterations: int, repetitions: int) -> float:
    best = float("inf")
    for _ in range(repetitions):
        start = time.process_time()
        for _ in range(iterations):
            run()
        best = min(best, (time.process_time() - start) / iterations)
    return best * 1e6


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    from sentry_sdk.scrubber import EventScrubber

    scrubber = EventScrubber()

    def sentry_scrub() -> None:
        # EventScrubber edits in place: each run gets a fresh copy (its cost is
        # measured alone below and taken off).
        scrubber.scrub_event(copy.deepcopy(SENTRY_EVENT))

    copying = _best(lambda: copy.deepcopy(SENTRY_EVENT), args.iterations, args.repetitions)
    rows = [
        ("access-log line (no secret)", lambda: redact(ACCESS_LINE), None),
        ("error line with secrets", lambda: redact(ERROR_LINE), None),
        ("Sentry event", lambda: redact(SENTRY_EVENT), sentry_scrub),
    ]
    print(f"{'input':32} {'soulwatch µs':>13} {'sentry-sdk µs':>14} {'ratio':>7}")
    for name, ours, theirs in rows:
        mine = _best(ours, args.iterations, args.repetitions)
        if theirs is None:
            print(f"{name:32} {mine:13.1f} {'-':>14} {'-':>7}")
            continue
        peer = max(_best(theirs, args.iterations, args.repetitions) - copying, 0.01)
        print(f"{name:32} {mine:13.1f} {peer:14.1f} {mine / peer:7.2f}")
    print("sentry-sdk scrubs by key only: the password inside the exception value and")
    print("the email in the body stay; soulwatch masks them (see docs/sdk.md).")


if __name__ == "__main__":
    main()
