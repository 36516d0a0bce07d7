"""``/federate``: the newest sample of every matching series, for another Prometheus to scrape.

As Prometheus federates: for each ``match[]`` selector, the last sample of
each series within the lookback window (stale markers dropped), grouped by
metric name under ``# TYPE <name> untyped``, with the sample's own timestamp
and the external labels added where the series lacks them (``instance=""``
included), in the text exposition format 0.0.4. A scraper with
``honor_labels: true`` then keeps the original ``job`` and ``instance``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from soulwatch.api.auth import Authenticator
from soulwatch.api.context import ApiContext
from soulwatch.api.http import HttpError
from soulwatch.api.selectors import SelectorError, parse_selector
from soulwatch.exceptions import QueryError
from soulwatch.promql.printer import go_float
from soulwatch.tsdb.model import Labels, Matcher, is_stale_nan
from soulwatch.tsdb.storage import Storage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def newest_samples(
    storage: Storage, sets: Sequence[Sequence[Matcher]], mint_ms: int, maxt_ms: int
) -> list[tuple[Labels, int, float]]:
    """The last non-stale sample in ``[mint_ms, maxt_ms]`` of each series matching any set."""
    found: dict[Labels, tuple[int, float]] = {}
    for matchers in sets:
        for series in storage.select(matchers, mint_ms, maxt_ms):
            if series.labels in found or not series.timestamps:
                continue
            t, v = series.timestamps[-1], series.values[-1]
            if not is_stale_nan(v):
                found[series.labels] = (t, v)
    return [(labels, t, v) for labels, (t, v) in found.items()]


def exposition(
    samples: Sequence[tuple[Labels, int, float]], external: Sequence[tuple[str, str]]
) -> str:
    """``samples`` in the text format, as Prometheus's federation writes them."""
    extra = dict(external)
    extra.setdefault("instance", "")
    extra_names = sorted(extra)
    lines: list[str] = []
    last_name = None
    for labels, t, v in sorted(samples, key=lambda s: (s[0].get("__name__"), s[0])):
        name = labels.get("__name__")
        if not name:
            continue  # a nameless series cannot be written
        if name != last_name:
            lines.append(f"# TYPE {name} untyped")
            last_name = name
        pairs = [(n, val) for n, val in labels if n != "__name__" and val]
        present = {n for n, _ in pairs}
        pairs += [(n, extra[n]) for n in extra_names if n not in present]
        text = ",".join(f'{n}="{_escape(val)}"' for n, val in pairs)
        lines.append(f"{name}{{{text}}} {go_float(v)} {t}")
    return "".join(line + "\n" for line in lines)


class FederateApi:
    """The ``/federate`` endpoint."""

    def __init__(self, ctx: ApiContext, auth: Callable[[], Authenticator]) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette route."""
        return [Route("/federate", self.federate, methods=["GET"])]

    async def federate(self, request: Request) -> Response:
        """``GET /federate?match[]=...``."""
        try:
            self._auth().require_read(request)
        except HttpError as exc:
            return exc.response()
        sets: list[list[Matcher]] = []
        for key, value in request.query_params.multi_items():
            if key != "match[]":
                continue
            try:
                sets.append(parse_selector(value))
            except SelectorError as exc:
                return PlainTextResponse(f"{exc}\n", status_code=400)
        now_ms = round(self.ctx.clock.time() * 1000)
        mint = now_ms - round(self.ctx.api.lookback_delta * 1000)
        storage = self.ctx.storage
        labels = self.ctx.external_labels

        def read() -> str:
            # Off the loop, the text too: federating everything is a large body.
            return exposition(newest_samples(storage, sets, mint, now_ms), labels)

        try:
            body = await asyncio.wait_for(self.ctx.runner(read), self.ctx.api.query_timeout)
        except QueryError as exc:  # an agent keeps nothing to federate
            return PlainTextResponse(f"{exc}\n", status_code=422)
        return Response(body, media_type=CONTENT_TYPE)
