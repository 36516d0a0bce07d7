"""HTTP helpers shared by the API modules: errors, bounded bodies, JSON, parameters.

Prometheus-compatible endpoints answer errors as Prometheus does
(``{"status": "error", "errorType": ..., "error": ...}`` with 400, 422 or
503); soulwatch's own endpoints answer ``{"error": ..., "field": ...}``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soulwatch.duration import parse_duration


class ErrorType(Enum):
    """Prometheus's API error types and the status code each is sent with."""

    BAD_DATA = ("bad_data", 400)
    EXECUTION = ("execution", 422)
    TIMEOUT = ("timeout", 503)
    CANCELED = ("canceled", 503)
    INTERNAL = ("internal", 500)
    NOT_FOUND = ("not_found", 404)
    UNAVAILABLE = ("unavailable", 503)

    @property
    def label(self) -> str:
        """The ``errorType`` string."""
        return self.value[0]

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.value[1]


class ApiError(Exception):
    """An error answered in Prometheus's error shape."""

    def __init__(self, kind: ErrorType, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)

    def response(self) -> Response:
        """The JSON error response."""
        body = {"status": "error", "errorType": self.kind.label, "error": self.message}
        return JSONResponse(body, status_code=self.kind.status)


class HttpError(Exception):
    """An error of soulwatch's own endpoints: status, message, and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        text: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.message = message
        self.field = field
        self.text = text
        super().__init__(message)

    def response(self) -> Response:
        """A JSON (or, for ping endpoints, plain text) error response."""
        if self.text:
            return Response(
                self.message, self.status, headers=self.headers, media_type="text/plain"
            )
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def read_body(request: Request, limit: int, *, text: bool = False) -> bytes:
    """The request body; ``413`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_big = HttpError(413, f"request body larger than {limit} bytes", text=text)
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, "invalid Content-Length", text=text)
        if int(declared) > limit:
            raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_json(request: Request, model: type[BaseModel], limit: int) -> Any:
    """The body validated as ``model``; 400 naming the field (or the JSON position)."""
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise HttpError(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise HttpError(
            400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HttpError(400, f"{where}: {first['msg']}", field=where) from None


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (NaN and infinities are not allowed in our own JSON)."""
    return JSONResponse(data, status_code=status)


async def form_params(request: Request, limit: int) -> list[tuple[str, str]]:
    """Query-string parameters plus, for a form POST, the body's (as Prometheus merges them)."""
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request, limit)
        if ctype == "application/x-www-form-urlencoded":
            try:
                params.extend(parse_qsl(body.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                raise ApiError(ErrorType.BAD_DATA, "form body is not UTF-8") from None
    return params


def first(params: list[tuple[str, str]], name: str) -> str | None:
    """The first value of parameter ``name``."""
    return next((v for k, v in params if k == name), None)


def parse_time(value: str, name: str) -> int:
    """A Prometheus API timestamp (Unix seconds or RFC 3339) in milliseconds."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad_param(name, f'cannot parse "{value}" to a valid timestamp') from None
        if dt.tzinfo is None:
            raise _bad_param(name, f'cannot parse "{value}" to a valid timestamp') from None
        return round(dt.timestamp() * 1000)
    if not math.isfinite(seconds) or abs(seconds) > 9.2e15:
        raise _bad_param(name, f'cannot parse "{value}" to a valid timestamp')
    whole = math.floor(seconds)
    return int(whole) * 1000 + round((seconds - whole) * 1000)


def parse_step(value: str, name: str) -> float:
    """A Prometheus API duration (float seconds or ``5m``) in seconds."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            return parse_duration(value)
        except ValueError:
            raise _bad_param(name, f'cannot parse "{value}" to a valid duration') from None
    if not math.isfinite(seconds):
        raise _bad_param(name, f'cannot parse "{value}" to a valid duration')
    return seconds


def _bad_param(name: str, message: str) -> ApiError:
    return ApiError(ErrorType.BAD_DATA, f'invalid parameter "{name}": {message}')


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's ``FormatFloat(v, 'f', -1, 64)``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def format_time(t_ms: int) -> float | int:
    """A timestamp as Prometheus writes it: seconds, at most three decimals."""
    if t_ms % 1000 == 0:
        return t_ms // 1000
    return t_ms / 1000
