"""The monitor's logging: one processor chain for soulwatch's events and every library's.

:func:`configure_logging` sets up structlog and the standard library's root
logger together: structlog events and the records of other libraries
(httpx, uvicorn, asyncio) and of soulwatch's own library modules, with their
``extra`` fields, all pass through the same processors and one renderer, so
JSON mode writes JSON lines only. Calling it again replaces the earlier
set-up (its handler included); :func:`reset_logging` undoes it.

These are the program's globals, touched only by the CLI (and tests).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from soulwatch.redaction import redact_urls_processor

#: Libraries that log every request at INFO: only their warnings are kept.
CHATTY_LOGGERS = ("httpx", "httpcore", "uvicorn.access")

_HANDLER_NAME = "soulwatch"


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # URLs in any event (httpx's request lines included) lose userinfo and query strings.
        redact_urls_processor,
    ]


def configure_logging(
    *, json: bool, stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Log to ``stream`` (default stderr) as JSON lines or console text, replacing any set-up.

    ``level`` applies to every logger; the request logs of httpx and uvicorn
    are kept from WARNING up.
    """
    shared = _shared_processors()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records of the standard library: their ``extra`` fields become event fields.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _keep,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    _remove_handler(root)
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # Uvicorn's own loggers write through their handlers unless they propagate to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.reset_defaults()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a second configure_logging must reach loggers made before it.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging`: structlog's defaults, no soulwatch handler."""
    _remove_handler(logging.getLogger())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def _remove_handler(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()


def _keep(logger: Any, method: str, event_dict: Any) -> Any:
    """Leave exceptions to the console renderer, which prints them itself."""
    return event_dict
