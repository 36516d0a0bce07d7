"""The request id of the request being served, as a context variable.

The middleware sets it; the log pipeline, Sentry's ``before_send`` and any
code of the host app read it with :func:`current_request_id`.
"""

from __future__ import annotations

import os
import re
import secrets
from contextvars import ContextVar
from typing import Final

REQUEST_ID_HEADER: Final = "x-request-id"
"""The header read from requests and set on every response."""

_request_id: ContextVar[str | None] = ContextVar("soulwatch_request_id", default=None)
# A client may send any bytes: accept only short ids of safe characters, so a
# log line or header never carries a 10 KB or multi-line value from outside.
_VALID: Final = re.compile(rb"[A-Za-z0-9._:+=/-]{8,128}")


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


class _IdSource:
    """Unique ids cheaply: a random 16-hex prefix per process and a 16-hex counter.

    Ids need to be unique, not secret, and this is on every request's path. The
    prefix is redrawn in a forked child so workers never share a sequence.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._next = 0

    def __call__(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._pid, self._prefix, self._next = pid, secrets.token_hex(8), 0
        self._next += 1
        return f"{self._prefix}{self._next:016x}"


new_request_id = _IdSource()
"""A fresh request id: 32 hex characters, unique across processes."""


def accept_request_id(raw: bytes | None) -> str:
    """``raw`` if it is a well-formed id (8-128 safe characters), else a fresh one."""
    if raw is not None and _VALID.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()


def set_request_id(request_id: str | None) -> object:
    """Bind ``request_id`` to the current context; returns a token for :func:`reset_request_id`."""
    return _request_id.set(request_id)


def reset_request_id(token: object) -> None:
    """Undo :func:`set_request_id`."""
    _request_id.reset(token)  # type: ignore[arg-type]
