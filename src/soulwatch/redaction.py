"""Keeping secrets that live inside URLs out of logs and error messages.

Receiver and target URLs often carry a secret: ``user:password@`` userinfo,
a ``?token=`` query parameter, or the path itself (a Slack or Discord
webhook's last segment *is* its key). :func:`redact_url` keeps what helps an
operator (scheme, host, port, the shape of the path) and drops the rest;
:func:`redact_urls` does the same to every URL inside a line of text.

:func:`redact_urls_processor` applies it to every log event; the monitor's
logging (:mod:`soulwatch.log_setup`) runs standard-library records through
the same chain, which is how httpx's own ``HTTP Request: POST https://...``
line is cleaned.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: What replaces a secret-looking path segment.
MASK = "..."
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
# A segment that looks like a key rather than a word: long, and mixing letters
# with digits (Slack's 24-character key, Discord's token, a UUID).
_SECRET_SEGMENT = re.compile(r"(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_.~-]{16,}")


def redact_url(url: str) -> str:
    """``url`` without userinfo, query string or fragment, secret-looking path segments masked.

    ``https://u:p@hooks.slack.com/services/T0/B0/abcdEFGH1234ijkl5678?x=1`` becomes
    ``https://hooks.slack.com/services/T0/B0/...``. Text that does not parse is
    reduced to its scheme.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://" + MASK if "://" in url else MASK
    if not parts.scheme or not parts.netloc:
        # Not a URL urllib understands (a typo in a config): keep what it shows,
        # minus anything after "?" and anything before an "@".
        text = re.split(r"[?#]", url, maxsplit=1)[0]
        return text.rsplit("@", 1)[-1] + (f"?{MASK}" if text != url else "")
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    path = "/".join(
        MASK if _SECRET_SEGMENT.fullmatch(seg) else seg for seg in parts.path.split("/")
    )
    out = f"{parts.scheme}://{netloc}{path}"
    if parts.query or parts.fragment:
        out += "?" + MASK
    return out


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_urls_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: URLs inside string values of the event are redacted."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = redact_urls(value)
    return event_dict


_SENSITIVE_PARAM = re.compile(
    r"(?i)^(.*token.*|.*secret.*|.*passw(or)?d.*|.*api[-_]?key.*|key|auth.*|sig|signature|code)$"
)


def without_credentials(url: str) -> str:
    """``url`` fit for a label: no userinfo, values of secret-looking query keys masked.

    Unlike :func:`redact_url` it keeps the path and the other query values, so
    two targets that differ only there keep distinct ``instance`` labels.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return redact_url(url)
    if "@" not in parts.netloc and not parts.query:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    query = "&".join(
        f"{k}={MASK}" if sep and _SENSITIVE_PARAM.match(k) else f"{k}{sep}{v}"
        for k, sep, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
