"""A small client for Alertmanager's v2 silence API, served by soulwatch and by Alertmanager.

``soulwatch silence add|list|expire`` use it; because the paths and bodies are
Alertmanager's, the same commands work against a real Alertmanager.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from soulwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from soulwatch.alerting.silences import GettableSilence, PostableSilence, SilenceMatcher
from soulwatch.exceptions import ConfigError, SoulwatchError


class SilenceAPIError(SoulwatchError):
    """The silence API answered with an error or could not be reached."""


class SilenceClient:
    """Talks to ``<url>/api/v2/silences`` with an optional bearer token."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, transport=transport, timeout=timeout
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> SilenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SilenceAPIError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise SilenceAPIError(
                f"{method} {path}: HTTP {response.status_code}: {response.text[:300].strip()}"
            )
        return response

    def add(
        self,
        matchers: list[str],
        *,
        duration: float,
        author: str,
        comment: str,
        start: datetime | None = None,
    ) -> str:
        """Create a silence; returns its id."""
        try:
            parsed = [m for text in matchers for m in parse_matchers(text)]
        except MatcherSyntaxError as exc:
            raise ConfigError(f"bad matcher: {exc}") from exc
        if not parsed:
            raise ConfigError("a silence needs at least one matcher")
        begin = start or datetime.now(UTC)
        body = PostableSilence(
            matchers=[SilenceMatcher.from_matcher(m) for m in parsed],
            startsAt=begin,
            endsAt=begin + timedelta(seconds=duration),
            createdBy=author,
            comment=comment,
        )
        response = self._call(
            "POST",
            "/api/v2/silences",
            json=body.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        return str(response.json()["silenceID"])

    def list(self) -> list[GettableSilence]:
        """Every silence the server knows."""
        return [
            GettableSilence.model_validate(s) for s in self._call("GET", "/api/v2/silences").json()
        ]

    def expire(self, silence_id: str) -> None:
        """Expire a silence now."""
        self._call("DELETE", f"/api/v2/silence/{silence_id}")
