"""Structured logging: one pipeline for structlog, stdlib ``logging`` and uvicorn.

:func:`configure_logging` renders one JSON object per line in production and
readable console output in development (``format=`` or
``SOULWATCH_LOG_FORMAT=json|console``). Every line emitted while serving a
request carries its ``request_id``, uvicorn's access line included, whose
arguments become fields (``client``, ``method``, ``path``, ``http_version``,
``status``) instead of a formatted string. ``trace_id``/``span_id`` are added
when an OpenTelemetry span is active. Exceptions become structured fields.
Secrets are redacted last, after every other processor has run.

Nothing happens at import: logging is configured only when this is called.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

from soulwatch.instrument.context import current_request_id
from soulwatch.instrument.redact import REDACTED, is_sensitive_key, redact, redact_text

LogFormat = Literal["json", "console"]
"""``json`` for production, ``console`` for development."""

FORMAT_ENV: Final = "SOULWATCH_LOG_FORMAT"
LEVEL_ENV: Final = "SOULWATCH_LOG_LEVEL"
_SERVER_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "gunicorn.access",
)


def add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: adds the current request's ``request_id``."""
    request_id = current_request_id()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: adds ``trace_id``/``span_id`` when OpenTelemetry has an active span."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # OpenTelemetry not in use: never import it
        return event_dict
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def uvicorn_access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: turns uvicorn's access-log arguments into fields."""
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if (
        record is not None
        and record.name.endswith(".access")
        and isinstance(args, tuple)
        and len(args) == 5
    ):
        client, method, path, http_version, status = args
        event_dict["event"] = "request"
        event_dict.update(
            client=client, method=method, path=path, http_version=http_version, status=status
        )
    return event_dict


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: masks secret-looking fields and credentials inside strings and structures."""
    for key, value in event_dict.items():
        if key.startswith("_"):
            continue
        if is_sensitive_key(key) and value:
            event_dict[key] = REDACTED
        elif isinstance(value, str | list | dict):
            event_dict[key] = redact(value)
    return event_dict


def redacted_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """Console exception formatter: the plain traceback (no locals), scrubbed."""
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redact_text(buffer.getvalue()))


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn duplicates some messages with ANSI colours in an extra field.
    event_dict.pop("color_message", None)
    return event_dict


def shared_processors(service: str | None = None) -> list[Processor]:
    """The processors every log line goes through, before rendering."""
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        uvicorn_access_fields,
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        processors.append(_add_service(service))
    return processors


def _add_service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def resolve_format(
    fmt: LogFormat | None, environ: MutableMapping[str, str] | None = None
) -> LogFormat:
    """``fmt``, else ``SOULWATCH_LOG_FORMAT``, else ``json``; rejects anything else."""
    value = fmt or (os.environ if environ is None else environ).get(FORMAT_ENV) or "json"
    if value not in ("json", "console"):
        raise ValueError(f"{FORMAT_ENV} must be 'json' or 'console', got {value!r}")
    return value  # type: ignore[return-value]


def configure_logging(
    *,
    format: LogFormat | None = None,
    level: str | int | None = None,
    service: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Route structlog, stdlib logging and uvicorn/gunicorn logs through one pipeline.

    ``level`` defaults to ``SOULWATCH_LOG_LEVEL`` or ``INFO``; ``stream`` to stdout.
    Calling it again replaces the previous set-up (no duplicated lines).
    """
    fmt = resolve_format(format)
    out = stream or sys.stdout
    level = level or os.environ.get(LEVEL_ENV) or "INFO"
    pre_chain = shared_processors(service)
    renderer: Processor
    if fmt == "json":
        # Locals are left out of tracebacks: they are where secrets live.
        tracebacks = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        final: list[Processor] = [tracebacks, redact_secrets]
        renderer = structlog.processors.JSONRenderer()
    else:
        final = [redact_secrets]
        # Colours only on a terminal: a file or pipe gets plain text. The
        # renderer formats exc_info itself, after redact_secrets ran: its
        # traceback text is scrubbed on the way out, and shows no locals.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=redacted_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        pass_foreign_args=True,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.set_name("soulwatch")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre_chain,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger bound to ``initial`` fields."""
    return structlog.get_logger(name, **initial)
