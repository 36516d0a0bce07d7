"""Silences at Alertmanager's API v2 paths, so ``amtool`` and scripts work unchanged.

``GET/POST /api/v2/silences``, ``GET/DELETE /api/v2/silence/{id}``, with
Alertmanager's ``PostableSilence`` / ``GettableSilence`` shapes. Creating or
expiring a silence needs a token with the ``silences`` scope. When the
silence store cannot be written (a full disk) they answer 503 with
Alertmanager's error shape, a JSON string naming the cause; the silences
already stored stay readable and keep muting.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soulwatch.alerting.silences import PostableSilence
from soulwatch.api.context import ApiContext, SilenceNotFoundError, SilencesView
from soulwatch.api.http import HttpError, json_response, parse_json
from soulwatch.config import Scope
from soulwatch.exceptions import StorageError


class SilenceApi:
    """The Alertmanager v2 silence endpoints over a :class:`SilencesView`."""

    def __init__(self, ctx: ApiContext, auth: Any) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        return [
            Route("/api/v2/silences", self._guard(self.list_silences), methods=["GET"]),
            Route("/api/v2/silences", self._guard(self.post_silence), methods=["POST"]),
            Route("/api/v2/silence/{id}", self._guard(self.get_silence), methods=["GET"]),
            Route("/api/v2/silence/{id}", self._guard(self.delete_silence), methods=["DELETE"]),
        ]

    def _guard(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                if self.ctx.silences is None:
                    raise HttpError(503, "silences are not available: alerting is not configured")
                result: Response = await handler(request, self.ctx.silences)
            except HttpError as exc:
                return exc.response()
            except SilenceNotFoundError:
                return HttpError(404, "silence not found").response()
            except StorageError as exc:
                # Alertmanager answers its API errors with a JSON string.
                return JSONResponse(str(exc), status_code=503)
            return result

        return endpoint

    async def list_silences(self, request: Request, store: SilencesView) -> Response:
        """``GET /api/v2/silences``."""
        self._auth().require_read(request)
        return json_response(await asyncio.to_thread(store.list_silences))

    async def get_silence(self, request: Request, store: SilencesView) -> Response:
        """``GET /api/v2/silence/{id}``."""
        self._auth().require_read(request)
        return json_response(await asyncio.to_thread(store.get_silence, request.path_params["id"]))

    async def post_silence(self, request: Request, store: SilencesView) -> Response:
        """``POST /api/v2/silences``: create or update; ``{"silenceID": id}``."""
        self._auth().require(request, Scope.SILENCES)
        silence = await parse_json(request, PostableSilence, self.ctx.api.max_body_bytes)
        postable = silence.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            silence_id = await asyncio.to_thread(store.put_silence, postable)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return json_response({"silenceID": silence_id})

    async def delete_silence(self, request: Request, store: SilencesView) -> Response:
        """``DELETE /api/v2/silence/{id}``: expire it."""
        self._auth().require(request, Scope.SILENCES)
        await asyncio.to_thread(store.expire_silence, request.path_params["id"])
        return Response(status_code=200)
