"""soulwatch.instrument: the light SDK a monitored service imports.

``instrument(app, service="backend")`` adds golden-signal metrics, ``/metrics``,
``/health``, ``/ready``, request ids and structured logs to a Starlette or
FastAPI app; every piece is also usable alone. It needs only
``prometheus_client`` and ``structlog`` (and the host app's starlette);
Sentry, Redis and httpx are extras, imported only when used. Nothing here
imports the monitor side of soulwatch.
"""

from soulwatch.instrument.asgi import MetricsMiddleware, RequestIdMiddleware
from soulwatch.instrument.context import current_request_id
from soulwatch.instrument.exporters import (
    DogStatsDExporter,
    Exporter,
    ExportLoop,
    OtlpExporter,
    exporter_from_url,
)
from soulwatch.instrument.exposition import MetricsEndpoint
from soulwatch.instrument.health import CheckResult, HealthChecks, http_check, redis_check
from soulwatch.instrument.heartbeat import Heartbeat, HeartbeatTransport
from soulwatch.instrument.jobs import FailureCategory, JobRun, JobTracker, Outcome, track_job
from soulwatch.instrument.logs import configure_logging, get_logger
from soulwatch.instrument.metrics import HttpMetrics
from soulwatch.instrument.ratelimit import RateLimitRecorder
from soulwatch.instrument.sentry import init_sentry
from soulwatch.instrument.wiring import Instrumentation, InstrumentConfig, instrument

__all__ = [
    "CheckResult",
    "DogStatsDExporter",
    "ExportLoop",
    "Exporter",
    "FailureCategory",
    "HealthChecks",
    "Heartbeat",
    "HeartbeatTransport",
    "HttpMetrics",
    "InstrumentConfig",
    "Instrumentation",
    "JobRun",
    "JobTracker",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "OtlpExporter",
    "Outcome",
    "RateLimitRecorder",
    "RequestIdMiddleware",
    "configure_logging",
    "current_request_id",
    "exporter_from_url",
    "get_logger",
    "http_check",
    "init_sentry",
    "instrument",
    "redis_check",
    "track_job",
]
