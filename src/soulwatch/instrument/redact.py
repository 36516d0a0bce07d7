"""Secret scrubbing shared by the log pipeline and Sentry's ``before_send``.

Three shapes of secret are recognised: values under a sensitive key
(``authorization``, ``cookie``, ``password``, ``token``, ``secret``, ``api_key``,
``dsn``...), passwords in URLs and DSNs (``scheme://user:secret@host``), and
bearer/basic credentials or ``token=...`` query parameters inside free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

REDACTED: Final = "[redacted]"

_SENSITIVE_KEY: Final = re.compile(
    r"(authorization|cookie|passw(or)?d|secret|token|api[-_]?key|private[-_]?key|dsn|session)",
    re.IGNORECASE,
)
_URL_USERINFO: Final = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s:@]*(:[^/\s@]*)?)@"
)
_AUTH_VALUE: Final = re.compile(
    r"\b(?P<kind>Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE
)
_QUERY_SECRET: Final = re.compile(
    r"(?P<key>[?&](?:[a-z_]*token|access_token|api[-_]?key|key|secret|password|passwd|sig|signature)=)[^&#\s]+",
    re.IGNORECASE,
)


def is_sensitive_key(key: str) -> bool:
    """True when a field named ``key`` holds a secret (its value is dropped)."""
    return _SENSITIVE_KEY.search(key) is not None


def redact_text(text: str) -> str:
    """``text`` with URL credentials, auth header values and secret query values masked."""
    if "://" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _AUTH_VALUE.sub(lambda m: f"{m.group('kind')} {REDACTED}", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m.group("key") + REDACTED, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user = userinfo.split(":", 1)[0]
    # A DSN carries its key as the user part (https://<key>@sentry.io/1): mask it too.
    return f"{match.group('scheme')}{REDACTED}@" if user else f"{match.group('scheme')}@"


def redact(value: Any, *, depth: int = 0) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secrets masked; other values as is."""
    if depth > 32:  # Sentry frames nest deep: event > exception > frames > vars > ...
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and is_sensitive_key(k) and v
                else redact(v, depth=depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        # Header lists come as [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and is_sensitive_key(value[0]):
            return [value[0], REDACTED]
        return [redact(v, depth=depth + 1) for v in value]
    return value
