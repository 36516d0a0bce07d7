"""Series selectors of the ``match[]`` parameter: ``name{label="v", other=~"re"}``.

Only the selector form is accepted here (as Prometheus does for ``match[]``),
so this small parser is all the metadata endpoints need.
"""

from __future__ import annotations

import re

from soulwatch.tsdb.model import METRIC_NAME, Matcher, MatchType

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = dict(zip("ntr\\\"'abfv", "\n\t\r\\\"'\a\b\f\v", strict=True))


class SelectorError(ValueError):
    """A selector that does not parse; the message says where."""


def parse_selector(text: str) -> list[Matcher]:
    """The matchers of a series selector; raises :class:`SelectorError`."""
    parser = _Parser(text)
    matchers = parser.selector()
    if not any(not m.matches("") for m in matchers):
        raise SelectorError("vector selector must contain at least one non-empty matcher")
    return matchers


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> SelectorError:
        return SelectorError(f"1:{self.pos + 1}: parse error: {message}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def selector(self) -> list[Matcher]:
        self.skip()
        matchers: list[Matcher] = []
        name = _NAME.match(self.text, self.pos)
        if name:
            matchers.append(Matcher(MatchType.EQUAL, METRIC_NAME, name.group()))
            self.pos = name.end()
            self.skip()
        if self.pos < len(self.text) and self.text[self.pos] == "{":
            self.pos += 1
            matchers.extend(self.braces())
            self.skip()
        if not matchers and self.pos >= len(self.text):
            raise self.error("unexpected end of input")
        if self.pos != len(self.text):
            raise self.error(f"unexpected character {self.text[self.pos]!r}")
        return matchers

    def braces(self) -> list[Matcher]:
        out: list[Matcher] = []
        while True:
            self.skip()
            if self.peek() == "}":
                self.pos += 1
                return out
            label = _LABEL.match(self.text, self.pos)
            if not label:
                raise self.error("expected a label name")
            self.pos = label.end()
            self.skip()
            op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
            if op is None:
                raise self.error("expected a label matching operator")
            self.pos += len(op)
            self.skip()
            value = self.string()
            try:
                out.append(Matcher(MatchType(op), label.group(), value))
            except re.error as exc:
                raise self.error(f"invalid regular expression {value!r}: {exc}") from None
            self.skip()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.error("expected ',' or '}'")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise self.error("expected a quoted string")
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch == "\\" and quote != "`" and self.pos < len(self.text):
                esc = self.text[self.pos]
                self.pos += 1
                if esc not in _ESCAPES:
                    raise self.error(f"unknown escape sequence \\{esc}")
                out.append(_ESCAPES[esc])
                continue
            out.append(ch)
        raise self.error("unterminated quoted string")
