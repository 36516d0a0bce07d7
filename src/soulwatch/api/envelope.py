"""The envelope of Prometheus's HTTP API, shared by every ``/api/v1`` endpoint soulwatch serves.

Reads need the read permission (open unless ``auth.reads`` protects them);
an :class:`~soulwatch.api.http.ApiError` answers in Prometheus's error shape
(``{"status": "error", "errorType", "error"}``); any other
:class:`~soulwatch.api.http.HttpError` is a ``bad_data`` error, except the
auth and body-size refusals (401, 403, 413), which keep their own answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soulwatch.api.auth import Authenticator
from soulwatch.api.http import ApiError, ErrorType, HttpError

#: A Starlette endpoint.
Endpoint = Callable[[Request], Awaitable[Response]]

#: Refusals that answer as they are, not as ``bad_data``.
_OWN_ANSWER = (401, 403, 413)


def prometheus_endpoint(handler: Endpoint, auth: Callable[[], Authenticator]) -> Endpoint:
    """``handler`` behind the read permission, its errors in Prometheus's envelope."""

    async def endpoint(request: Request) -> Response:
        try:
            auth().require_read(request)
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except HttpError as exc:
            if exc.status in _OWN_ANSWER:
                return exc.response()
            return ApiError(ErrorType.BAD_DATA, exc.message).response()

    return endpoint


def success(data: Any) -> Response:
    """``{"status": "success", "data": data}``."""
    return JSONResponse({"status": "success", "data": data})
