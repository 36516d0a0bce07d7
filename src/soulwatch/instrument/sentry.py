"""Sentry set-up: environment, release, sample rates, service and request-id tags, scrubbing.

Needs the ``sentry`` extra. With no DSN (argument or ``SENTRY_DSN``) it does
nothing and says so in one log line, so the same code runs in development.

Scrubbing runs on the whole event, as the last step before it leaves: every
string in it (message, exception values, breadcrumbs, frame variables, request
body, extras) goes through :func:`soulwatch.instrument.redact.redact_text`, and
values under sensitive keys are dropped. Transactions get the same treatment
(span descriptions carry URLs and queries).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from soulwatch.instrument._extras import require
from soulwatch.instrument.context import current_request_id
from soulwatch.instrument.redact import redact

_log = logging.getLogger("soulwatch.instrument.sentry")

Event = dict[str, Any]
BeforeSend = Callable[[Event, dict[str, Any]], Event | None]


def scrub_event(event: Event) -> Event:
    """``event`` with secrets removed from every string and sensitive field in it."""
    return redact(event)  # type: ignore[no-any-return]


def _scrubbing(then: BeforeSend | None) -> BeforeSend:
    def before_send_transaction(event: Event, hint: dict[str, Any]) -> Event | None:
        event = scrub_event(event)
        return then(event, hint) if then is not None else event

    return before_send_transaction


def make_before_send(service: str | None, then: BeforeSend | None = None) -> BeforeSend:
    """A ``before_send`` that tags ``service`` and ``request_id``, scrubs, then calls ``then``."""

    def before_send(event: Event, hint: dict[str, Any]) -> Event | None:
        tags = event.setdefault("tags", {})
        if service:
            tags.setdefault("service", service)
        request_id = current_request_id()
        if request_id is not None:
            tags.setdefault("request_id", request_id)
        event = scrub_event(event)
        return then(event, hint) if then is not None else event

    return before_send


def init_sentry(
    dsn: str | None = None,
    *,
    service: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    sample_rate: float = 1.0,
    traces_sample_rate: float = 0.0,
    before_send: BeforeSend | None = None,
    **options: Any,
) -> bool:
    """Initialise sentry-sdk; returns False (and logs why) when no DSN is configured.

    ``dsn`` defaults to ``SENTRY_DSN``; ``environment`` and ``release`` to
    ``SENTRY_ENVIRONMENT`` and ``SENTRY_RELEASE``. ``options`` go to
    ``sentry_sdk.init`` unchanged, except a ``before_send_transaction``, which
    runs after the scrubbing as ``before_send`` does. ``send_default_pii`` stays off.
    """
    dsn = dsn or os.environ.get("SENTRY_DSN")
    if not dsn:
        _log.info("sentry disabled: no DSN configured (set SENTRY_DSN to enable)")
        return False
    sentry_sdk = require("sentry_sdk", "sentry")
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or os.environ.get("SENTRY_ENVIRONMENT"),
        release=release or os.environ.get("SENTRY_RELEASE"),
        sample_rate=sample_rate,
        traces_sample_rate=traces_sample_rate,
        before_send=make_before_send(service, before_send),
        before_send_transaction=_scrubbing(options.pop("before_send_transaction", None)),
        send_default_pii=False,
        **options,
    )
    if service:
        sentry_sdk.set_tag("service", service)
    return True
