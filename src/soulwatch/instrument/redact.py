"""Secret scrubbing shared by the log pipeline, Sentry's hooks and heartbeat bodies.

Two mechanisms work together:

* **Structures** (dicts, lists, header pairs): the value under a sensitive key
  (``authorization``, ``cookie``, ``password``, ``token``, ``secret``,
  ``api_key``, ``dsn``, ``session``...) is replaced whole.
* **Free text**: every string, wherever it sits, goes through
  :data:`BUILTIN_PATTERNS` (listed in docs/sdk.md) and then the patterns added
  with :func:`add_pattern`. A pattern with a group named ``secret`` masks only
  that group; otherwise the whole match is masked.

The extra patterns are the SDK's one redaction global; :func:`reset_patterns`
drops them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

REDACTED: Final = "[redacted]"

_SENSITIVE_KEY: Final = re.compile(
    r"(authorization|cookie|passw(or)?d|secret|token|api[-_]?key|private[-_]?key|dsn|session)",
    re.IGNORECASE,
)
_MAX_DEPTH: Final = 64  # Sentry frames nest deep: event > exception > frames > vars > ...

# A value in free text: a quoted string, or a run up to a separator.
_VALUE: Final = r"""(?:"[^"\r\n]*"|'[^'\r\n]*'|[^\s&,;"'<>(){}\[\]]+)"""
_KEY_WORDS: Final = (
    r"passw(?:or)?d|pwd|passphrase|secret|token|api[-_]?key|apikey|access[-_]?key"
    r"|secret[-_]?key|private[-_]?key|client[-_]?secret|credentials?|dsn|sig|signature"
)


class Pattern(NamedTuple):
    """One free-text rule: its name (for the docs), its regex, and the words it needs.

    ``hints`` are lower-case literals of which at least one occurs in any text
    the regex can match; a text with none of them skips the regex. Most log
    fields (paths, timestamps, ids) then cost a few substring checks, not ten
    regex scans. No hints: the regex always runs.
    """

    name: str
    regex: re.Pattern[str]
    hints: tuple[str, ...] = ()


BUILTIN_PATTERNS: Final[tuple[Pattern, ...]] = (
    # scheme://user:password@host — the whole user part goes, a DSN's key is its user.
    Pattern(
        "url-credentials",
        re.compile(r"(?<=://)(?P<secret>[^/\s:@'\"]*(?::[^/\s@'\"]*)?)@(?=[^\s/@])"),
        ("@",),
    ),
    # Authorization: Bearer xyz / Basic xyz / Token xyz / a bare value.
    Pattern(
        "authorization-header",
        re.compile(
            r"\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?:Bearer|Basic|Token|Digest|Negotiate)\s+)?(?P<secret>[^\s\"',;]+)",
            re.IGNORECASE,
        ),
        ("authorization",),
    ),
    Pattern(
        "auth-scheme",
        re.compile(r"\b(?:[Bb]earer|Basic|Token)\s+(?P<secret>[A-Za-z0-9._~+/=-]{6,})"),
        ("bearer", "basic", "token"),
    ),
    Pattern(
        "cookie-header",
        re.compile(r"\b(?:set-)?cookie[\"']?\s*:\s*(?P<secret>[^\r\n\"']+)", re.IGNORECASE),
        ("cookie",),
    ),
    # password=hunter2, token: abc, "api_key": "sk-...", ?access_token=..., AWS_SECRET_ACCESS_KEY=
    Pattern(
        "key-value",
        re.compile(
            rf"(?:{_KEY_WORDS})[\"']?\s*(?:=|:)\s*"
            rf"(?P<secret>{_VALUE})",
            re.IGNORECASE,
        ),
        ("pass", "pwd", "secret", "token", "key", "credential", "dsn", "sig"),
    ),
    Pattern(
        "aws-access-key-id",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"),
        ("akia", "asia", "agpa", "aida", "aroa"),
    ),
    Pattern(
        "provider-token",
        re.compile(
            r"\b(?:"
            r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
            r"|(?:sk|pk|rk)[-_](?:live|test)[-_][A-Za-z0-9]{8,}"  # Stripe-style
            r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI/Anthropic-style
            r"|AIza[A-Za-z0-9_-]{35}"  # Google API key
            r"|e2b_[A-Za-z0-9]{20,}"  # E2B
            r")"
        ),
        ("gh", "github_pat_", "xox", "sk", "pk", "rk", "aiza", "e2b_"),
    ),
    Pattern(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        ("eyj",),
    ),
    Pattern(
        "private-key-block",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        ("private key",),
    ),
    Pattern(
        "email",
        re.compile(
            r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
        ),
        ("@",),
    ),
)
"""The free-text patterns always applied, in order (documented in docs/sdk.md)."""

_HINTS: Final = re.compile(
    "(?=("
    + "|".join(re.escape(h) for h in sorted({h for p in BUILTIN_PATTERNS for h in p.hints}))
    + "))"
)

_lock = threading.Lock()
_extra: tuple[Pattern, ...] = ()


def add_pattern(pattern: str | re.Pattern[str], name: str | None = None) -> Pattern:
    """Scrub ``pattern`` from all forwarded text from now on, in every pipeline.

    A group named ``secret`` limits the mask to that group (``r"ssn=(?P<secret>\\d+)"``);
    without it the whole match is masked. A string is compiled as is; bad syntax
    raises ``ValueError`` naming the pattern.
    """
    global _extra
    try:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ValueError(f"redaction pattern {pattern!r} is not a valid regex: {exc}") from exc
    if regex.search("") is not None:
        raise ValueError(f"redaction pattern {regex.pattern!r} matches the empty string")
    added = Pattern(name or regex.pattern, regex)
    with _lock:
        _extra = (*_extra, added)
    return added


def reset_patterns() -> None:
    """Drop every pattern added with :func:`add_pattern` (the built-in ones stay)."""
    global _extra
    with _lock:
        _extra = ()


def patterns() -> tuple[Pattern, ...]:
    """Every free-text pattern applied, built-in first."""
    return BUILTIN_PATTERNS + _extra


def is_sensitive_key(key: str) -> bool:
    """True when a field named ``key`` holds a secret (its value is dropped)."""
    return _SENSITIVE_KEY.search(key) is not None


def _mask(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex or match.group("secret") is None:
        return REDACTED
    start, end = match.span("secret")
    secret = match.group("secret")
    if len(secret) >= 2 and secret[0] == secret[-1] and secret[0] in "\"'":
        start, end = start + 1, end - 1  # keep the quotes: a JSON body stays JSON
    whole_start = match.start()
    text = match.group(0)
    return text[: start - whole_start] + REDACTED + text[end - whole_start :]


def redact_text(text: str) -> str:
    """``text`` with every secret shape of :func:`patterns` masked as ``[redacted]``."""
    # One C-level scan finds which hints occur (overlapping, so "keyj" still
    # shows "eyj"); a pattern none of whose hints occur cannot match.
    found = set(_HINTS.findall(text.lower()))
    if not found and not _extra:
        return text  # most log fields: paths, timestamps, ids
    for pattern in patterns():
        if pattern.hints and found.isdisjoint(pattern.hints):
            continue
        text = pattern.regex.sub(_mask, text)
    return text


def redact(value: Any, *, depth: int = 0) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secrets masked; other values as is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping | list | tuple) and depth > _MAX_DEPTH:
        return REDACTED  # unreadable depth: drop rather than forward unscrubbed
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
