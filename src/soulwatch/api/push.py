"""Push: batch jobs send Prometheus text exposition (scope ``push``).

``POST|PUT /api/v1/push/job/<job>[/<label>/<value>...]``, as the
Pushgateway's grouping-key path. Every sample is stored at its own timestamp
if it has one, else at the time of the push, with ``job`` and the grouping
labels set (they override labels of the same name in the body). Bodies past
``api.push_max_bytes`` answer 413; unparsable text answers 400 with the
parser's reason, and nothing of that push is stored.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.api.context import ApiContext
from soulwatch.api.http import HttpError, json_response, read_body
from soulwatch.config import Scope
from soulwatch.tsdb.model import Labels

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PushApi:
    """The push endpoint."""

    def __init__(self, ctx: ApiContext, auth: Any) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        return [Route("/api/v1/push/job/{rest:path}", self.push, methods=["POST", "PUT"])]

    async def push(self, request: Request) -> Response:
        """Store the pushed samples; ``{"samples": n}``."""
        try:
            self._auth().require(request, Scope.PUSH)
            grouping = _grouping(request.path_params["rest"])
            body = await read_body(request, self.ctx.api.push_max_bytes)
            try:
                text = body.decode()
            except UnicodeDecodeError:
                raise HttpError(400, "body is not UTF-8 text") from None
            now_ms = round(self.ctx.clock.time() * 1000)
            samples = _parse(text, grouping, now_ms)
        except HttpError as exc:
            return exc.response()
        await asyncio.to_thread(self._store, samples)
        return json_response({"samples": len(samples)})

    def _store(self, samples: list[tuple[Labels, int, float]]) -> None:
        app = self.ctx.storage.appender()
        try:
            for labels, t_ms, value in samples:
                app.append(labels, t_ms, value)
        except BaseException:
            app.rollback()
            raise
        app.commit()


def _grouping(path: str) -> dict[str, str]:
    parts = path.split("/")
    job = parts[0]
    if not job:
        raise HttpError(400, "the job name must not be empty", field="job")
    rest = parts[1:]
    if len(rest) % 2:
        raise HttpError(400, "grouping labels come in /<name>/<value> pairs")
    labels = {"job": job}
    for name, value in zip(rest[::2], rest[1::2], strict=True):
        if not _LABEL.match(name) or name.startswith("__"):
            raise HttpError(400, f"invalid label name {name!r} in the path", field=name)
        labels[name] = value
    return labels


def _parse(text: str, grouping: dict[str, str], now_ms: int) -> list[tuple[Labels, int, float]]:
    out: list[tuple[Labels, int, float]] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = Labels.of(sample.labels, **grouping, __name__=sample.name)
                t_ms = now_ms if sample.timestamp is None else round(float(sample.timestamp) * 1000)
                out.append((labels, t_ms, float(sample.value)))
    except (ValueError, TypeError, IndexError) as exc:
        raise HttpError(400, f"invalid exposition text: {exc}") from None
    return out
