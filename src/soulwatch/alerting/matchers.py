"""Alertmanager's label matcher syntax.

Alertmanager (and ``amtool``) accept matchers such as ``severity="page"``,
``team=~"db|web"``, ``env!=prod`` and lists of them, optionally wrapped in
braces: ``{alertname="X", env=~"prod|stage"}``. Values may be double-quoted
(with ``\\"``, ``\\\\`` and ``\\n`` escapes) or bare. Regexes are anchored at
both ends, as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from soulwatch.tsdb.model import Labels, Matcher, MatchType

_OPERATORS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"[^\s=!~\"{},]+")
# Characters that end an unquoted value in Alertmanager's matcher syntax.
_RESERVED = frozenset("{}!=~\"'")


class MatcherSyntaxError(ValueError):
    """A matcher string is not valid; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.reason = message
        self.text = text
        self.position = position
        super().__init__(f"{message} at position {position + 1} in {text!r}")


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list of matchers, optionally inside ``{...}``."""
    body = text.strip()
    offset = len(text) - len(text.lstrip())
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherSyntaxError("missing closing '}'", text, len(text))
        body = body[1:-1]
        offset += 1
    result: list[Matcher] = []
    pos = 0
    while pos < len(body):
        pos = _skip_space(body, pos)
        if pos >= len(body):
            break
        matcher, pos = _parse_one(body, pos, text, offset)
        result.append(matcher)
        pos = _skip_space(body, pos)
        if pos < len(body):
            if body[pos] != ",":
                raise MatcherSyntaxError("expected ',' between matchers", text, offset + pos)
            pos += 1
    return result


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher such as ``team=~"db|web"``."""
    matchers = parse_matchers(text)
    if len(matchers) != 1:
        raise MatcherSyntaxError(f"expected one matcher, found {len(matchers)}", text, 0)
    return matchers[0]


def _skip_space(body: str, pos: int) -> int:
    while pos < len(body) and body[pos].isspace():
        pos += 1
    return pos


def _parse_one(body: str, pos: int, text: str, offset: int) -> tuple[Matcher, int]:
    name_match = _NAME.match(body, pos)
    if name_match is None:
        raise MatcherSyntaxError("expected a label name", text, offset + pos)
    name = name_match.group(0)
    pos = _skip_space(body, name_match.end())
    for op in _OPERATORS:
        if body.startswith(op, pos):
            match_type = MatchType(op)
            pos += len(op)
            break
    else:
        raise MatcherSyntaxError(f"expected one of = != =~ !~ after {name!r}", text, offset + pos)
    pos = _skip_space(body, pos)
    if pos < len(body) and body[pos] == '"':
        value, pos = _quoted(body, pos, text, offset)
    else:
        end = pos
        while end < len(body) and body[end] != ",":
            end += 1
        value = body[pos:end].strip()
        # Alertmanager's matcher parser stops an unquoted value at these
        # characters: ``foo==bar`` is a typo for ``foo=bar``, not ``foo="=bar"``.
        bad = next((ch for ch in value if ch in _RESERVED), None)
        if bad is not None:
            raise MatcherSyntaxError(
                f"unexpected {bad!r} in the unquoted value {value!r} of {name!r}"
                f' (quote it if it is meant: {name}{match_type.value}"{value}")',
                text,
                offset + pos,
            )
        pos = end
    try:
        return Matcher(match_type, name, value), pos
    except re.error as exc:
        raise MatcherSyntaxError(f"invalid regex {value!r}: {exc}", text, offset + pos) from exc


def _quoted(body: str, pos: int, text: str, offset: int) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise MatcherSyntaxError("unterminated quoted value", text, offset + pos)


def legacy_matchers(match: dict[str, str], match_re: dict[str, str]) -> list[Matcher]:
    """The matchers of the older ``match`` / ``match_re`` maps."""
    result = [Matcher(MatchType.EQUAL, n, v) for n, v in sorted(match.items())]
    result += [Matcher(MatchType.REGEX, n, v) for n, v in sorted(match_re.items())]
    return result


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """Render matchers the way Alertmanager prints them: ``{a="b", c=~"d"}``."""
    return "{" + ", ".join(str(m) for m in matchers) + "}"


def matches(matchers: Iterable[Matcher], labels: Labels) -> bool:
    """Whether ``labels`` satisfies every matcher (a missing label is ``""``)."""
    return all(m.matches(labels.get(m.name)) for m in matchers)
