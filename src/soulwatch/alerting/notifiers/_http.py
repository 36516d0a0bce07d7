"""Shared HTTP delivery: one request, and the default reading of its response.

Each notifier owns how it reads its service's responses: it passes its own
``check`` to :func:`request` when the service says more than the status code
(GitHub's rate limit is a 403 that is worth retrying; Slack names its
permanent errors). :func:`raise_for_response` is the reading every HTTP
receiver shares: 2xx accepted, 429/408/5xx retried, any other 4xx permanent.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from soulwatch.exceptions import DeliveryError

USER_AGENT = "soulwatch-alerting"


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


#: How a notifier reads a response: return if accepted, else raise ``DeliveryError``.
ResponseCheck = Callable[[httpx.Response, float, str], None]


def describe(response: httpx.Response, what: str) -> str:
    """``what: HTTP <status>: <the start of the body>``."""
    detail = response.text[:200].strip()
    return f"{what}: HTTP {response.status_code}" + (f": {detail}" if detail else "")


def raise_for_response(response: httpx.Response, now: float, what: str) -> None:
    """Raise ``DeliveryError`` unless the response is a 2xx (the shared reading)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = describe(response, what)
    if status == 429:
        raise DeliveryError(
            message,
            permanent=False,
            retry_after=retry_after(response.headers.get("retry-after"), now),
            status=status,
        )
    # 408 (timeout) and 5xx are the receiver's trouble, not the request's.
    permanent = 400 <= status < 500 and status != 408
    raise DeliveryError(message, permanent=permanent, status=status)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    now: float,
    what: str,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    check: ResponseCheck = raise_for_response,
) -> httpx.Response:
    """Make one request; transport errors become retryable, bad URLs permanent."""
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = await client.request(
            method, url, json=json, content=content, headers=all_headers, params=params
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise DeliveryError(f"{what}: bad URL: {exc}", permanent=True) from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}", permanent=False) from exc
    check(response, now, what)
    return response
