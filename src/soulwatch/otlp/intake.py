"""``POST /v1/traces`` and ``POST /v1/metrics`` (OTLP/HTTP), and their scheduled writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.api.http import HttpError, read_body
from soulwatch.clock import Clock
from soulwatch.config import Scope
from soulwatch.otlp.config import OtlpConfig
from soulwatch.otlp.convert import add_metrics, add_spans
from soulwatch.otlp.decode import OtlpDecodeError, decode
from soulwatch.otlp.series import SeriesStore
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage
from soulwatch.tsdb.writer import SeriesWriter


class OtlpIntake:
    """The two OTLP/HTTP routes, and a source that writes what they received."""

    def __init__(self, config: OtlpConfig) -> None:
        self.config = config
        self.store = SeriesStore(config.max_series)
        self.spans = 0
        self.points = 0
        self.unsupported = 0

    def routes(self, auth: Callable[[], Any]) -> list[Route]:
        """The Starlette routes; writes need a token with the ``push`` scope."""

        async def traces(request: Request) -> Response:
            return await self._receive(request, auth, ExportTraceServiceRequest)

        async def metrics(request: Request) -> Response:
            return await self._receive(request, auth, ExportMetricsServiceRequest)

        return [
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/v1/metrics", metrics, methods=["POST"]),
        ]

    async def _receive(
        self, request: Request, auth: Callable[[], Any], kind: type[Any]
    ) -> Response:
        try:
            auth().require(request, Scope.PUSH)
            body = await read_body(request, self.config.max_body_bytes, text=True)
        except HttpError as exc:
            return exc.response()
        content_type = request.headers.get("content-type", "application/x-protobuf")
        encoding = request.headers.get("content-encoding", "").strip().lower()
        try:
            message = decode(body, content_type, encoding, kind, self.config.max_body_bytes)
        except OtlpDecodeError as exc:
            status = 415 if "Content-Type" in str(exc) else 400
            return Response(f"{exc}\n", status_code=status, media_type="text/plain")
        if isinstance(message, ExportTraceServiceRequest):
            self.spans += add_spans(self.store, message)
            reply: Any = ExportTraceServiceResponse()
        else:
            stored, unsupported = add_metrics(self.store, message)
            self.points += stored
            self.unsupported += unsupported
            reply = ExportMetricsServiceResponse()
        if content_type.startswith("application/json"):
            return Response("{}", media_type="application/json")
        return Response(reply.SerializeToString(), media_type="application/x-protobuf")

    def source(self, storage: Storage, clock: Clock) -> OtlpSource:
        """The scheduled writer of this intake's series."""
        return OtlpSource(self, storage, clock)


class OtlpSource:
    """Writes the received series every ``otlp.interval``, with the intake's own counters."""

    key = "otlp"

    def __init__(self, intake: OtlpIntake, storage: Storage, clock: Clock) -> None:
        self._intake = intake
        self._clock = clock
        self._writer = SeriesWriter(storage, self.key)
        self._status = SourceStatus()

    @property
    def interval(self) -> float:
        """Seconds between writes."""
        return self._intake.config.interval

    @property
    def status(self) -> SourceStatus:
        """The last write."""
        return self._status

    async def run_once(self, t: float) -> None:
        """Write every series at ``t``."""
        started = time.perf_counter()
        intake = self._intake
        samples = dict(intake.store.samples())
        own = Labels.of(job="otlp", instance="soulwatch")
        for name, value in (
            ("otlp_received_spans_total", intake.spans),
            ("otlp_received_points_total", intake.points),
            ("otlp_unsupported_points_total", intake.unsupported),
            ("otlp_dropped_series_total", intake.store.dropped),
        ):
            samples[own.with_(__name__=name)] = float(value)
        await asyncio.to_thread(self._writer.write, int(t * 1000), samples)
        self._status.health = Health.UP
        self._status.last_run = t
        self._status.duration = time.perf_counter() - started
        self._status.runs += 1

    async def close(self) -> None:
        """Mark every series stale."""
        await asyncio.to_thread(self._writer.close, int(self._clock.time() * 1000))
