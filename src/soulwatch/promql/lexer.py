"""The PromQL tokenizer.

It splits a query into :class:`Token` objects with their offsets. It knows
nothing about keywords: an identifier such as ``sum``, ``by`` or ``inf`` is an
``IDENT`` token and the parser decides, by context, whether it is a keyword,
a label name or a metric name (as Prometheus does in its grammar).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from soulwatch.exceptions import ParseError


class TokenKind(Enum):
    """The kinds of token."""

    NUMBER = "number"
    DURATION = "duration"
    STRING = "string"
    IDENT = "identifier"
    OPERATOR = "operator"
    PUNCT = "punctuation"
    EOF = "end of input"


@dataclass(frozen=True)
class Token:
    """One token: its kind, its source text and its 0-based offset."""

    kind: TokenKind
    text: str
    pos: int

    def describe(self, source: str) -> str:
        """The token as Prometheus's messages name it: ``identifier "foo"``, ``"("``, ``<op:+>``.

        ``source`` is the query text, for the token's original spelling.
        """
        if self.kind is TokenKind.EOF:
            return "end of input"
        if self.kind is TokenKind.OPERATOR:
            return '"="' if self.text == "=" else f"<op:{self.text}>"
        if self.kind is TokenKind.PUNCT:
            return f'"{self.text}"'
        raw = source[self.pos : self.pos + _source_length(source, self)]
        kind = self.kind.value
        if self.kind is TokenKind.IDENT and ":" in raw:
            kind = "metric identifier"
        if self.kind is TokenKind.STRING and len(raw) > 10:
            return f"{kind} {_go_quote(raw[:10])}..."  # Prometheus's %.10q
        return f"{kind} {_go_quote(raw)}"


def _go_quote(raw: str) -> str:
    # Like Go's %q.
    return '"' + raw.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DIGITS = frozenset("0123456789")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_OPERATORS = ("==", "!=", "=~", "!~", "<=", ">=", "+", "-", "*", "/", "%", "^", "<", ">", "=")
_PUNCT = "(){}[],:@"
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
)
_SCAN_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_IDENT_IN_BRACKETS = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_ESCAPE_DIGITS = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}


def line_column(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset ``pos`` in ``text``."""
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def error_at(text: str, pos: int, message: str) -> ParseError:
    """A :class:`ParseError` for ``message`` located at offset ``pos``."""
    line, column = line_column(text, pos)
    return ParseError(message, line=line, column=column)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token (see :func:`iter_tokens`)."""
    return list(iter_tokens(text))


def iter_tokens(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text`` one by one, ending with an ``EOF`` token.

    Lazy, like Prometheus's lexer, so that a parser reports the first problem
    in reading order. Raises :class:`ParseError` (in Prometheus's wording) for
    characters that start no token, unbalanced parentheses and brackets,
    unterminated strings, bad escapes and malformed numbers or durations.
    """
    pos = 0
    parens = 0
    brackets = 0  # inside [...] a ':' separates a subquery's range and step
    in_braces = False
    while pos < len(text):
        ch = text[pos]
        if ch in " \t\n\r":
            pos += 1
            continue
        if ch == "#":  # a comment runs to the end of the line
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
            continue
        if in_braces:
            token = _brace_token(text, pos)
            in_braces = token.text != "}"
        elif ch in _DIGITS or (ch == "." and text[pos + 1 : pos + 2] in _DIGITS):
            token = _number_or_duration(text, pos)
        elif ch in "\"'`":
            token = _string(text, pos)
        elif ch in _IDENT_START or (ch == ":" and not brackets):
            pattern = _IDENT_IN_BRACKETS if brackets else _IDENT
            match = pattern.match(text, pos)
            assert match is not None  # the first character always matches
            token = Token(TokenKind.IDENT, match.group(), pos)
        elif ch in _PUNCT:
            token = Token(TokenKind.PUNCT, ch, pos)
            if ch == "(":
                parens += 1
            elif ch == ")":
                parens -= 1
                if parens < 0:  # Prometheus points just past it
                    raise error_at(text, pos + 1, f"unexpected right parenthesis {ch!r}")
            elif ch == "[":
                if brackets:
                    raise error_at(text, pos, f"unexpected left bracket {ch!r}")
                brackets += 1
            elif ch == "]":
                brackets -= 1
                if brackets < 0:
                    raise error_at(text, pos, f"unexpected right bracket {ch!r}")
            elif ch == "{":
                in_braces = True
            elif ch == "}":
                raise error_at(text, pos, f"unexpected character: {ch!r}")
        else:
            token = _operator(text, pos)
        yield token
        pos = token.pos + _source_length(text, token)
    if in_braces:
        raise error_at(text, pos, "unexpected end of input inside braces")
    if parens > 0:
        raise error_at(text, pos, "unclosed left parenthesis")
    if brackets > 0:
        raise error_at(text, pos, "unclosed left bracket")
    yield Token(TokenKind.EOF, "", len(text))


def _operator(text: str, pos: int) -> Token:
    op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
    if op in ("=~", "!~"):
        # Regex operators exist only inside braces; Prometheus's lexer says so.
        raise error_at(text, pos, f"unexpected character after {op[0]!r}: '~'")
    if op is None:
        ch = text[pos]
        if ch == "!":
            after = text[pos + 1 : pos + 2] or "\ufffd"  # Go's rune for end of input
            raise error_at(text, pos, f"unexpected character after '!': {after!r}")
        raise error_at(text, pos, f"unexpected character: {ch!r}")
    return Token(TokenKind.OPERATOR, op, pos)


def _brace_token(text: str, pos: int) -> Token:
    """A token inside ``{...}``: label names, strings, matcher operators, commas."""
    ch = text[pos]
    if ch in _IDENT_START:
        match = _IDENT_IN_BRACKETS.match(text, pos)
        assert match is not None
        return Token(TokenKind.IDENT, match.group(), pos)
    if ch in "\"'`":
        return _string(text, pos)
    if ch in ",}":
        return Token(TokenKind.PUNCT, ch, pos)
    if ch == "{":
        raise error_at(text, pos, f"unexpected left brace {ch!r}")
    after = text[pos + 1 : pos + 2]
    if ch == "!":
        if after not in ("=", "~") or not after:
            shown = after or "\ufffd"  # Go's rune for end of input
            raise error_at(text, pos, f"unexpected character after '!' inside braces: {shown!r}")
        return Token(TokenKind.OPERATOR, ch + after, pos)
    if ch == "=":  # "==" inside braces is two "=" tokens, as in Prometheus
        return Token(TokenKind.OPERATOR, "=~" if after == "~" else "=", pos)
    raise error_at(text, pos, f"unexpected character inside braces: {ch!r}")


def _source_length(text: str, token: Token) -> int:
    # A string token's text is its decoded value; its source length is stored
    # separately so that positions stay exact.
    if token.kind is TokenKind.STRING:
        assert isinstance(token, _StringToken)
        return token.length
    return len(token.text)


@dataclass(frozen=True)
class _StringToken(Token):
    length: int = 0


def _number_or_duration(text: str, pos: int) -> Token:
    # Read as Prometheus's lexer does: the longest number-like run (even an
    # exponent without digits), then either a duration unit or a word boundary.
    scanned = _SCAN_NUMBER.match(text, pos)
    assert scanned is not None
    scan_end = scanned.end()
    duration = _DURATION.match(text, pos)
    if scan_end < len(text) and _continues_word(text[scan_end]):
        if duration is not None and not _continues_word(text[duration.end() : duration.end() + 1]):
            return Token(TokenKind.DURATION, duration.group(), pos)
        shown = text[pos : _bad_number_end(text, scan_end)]
        raise error_at(text, pos, f'bad number or duration syntax: "{shown}"')
    # A malformed number such as "1e-" is still a NUMBER token; like
    # Prometheus, the parser reports it when it converts the value.
    return Token(TokenKind.NUMBER, scanned.group(), pos)


def _bad_number_end(text: str, j: int) -> int:
    """Where Prometheus's lexer stops reading a malformed number, for its message."""
    if text[j : j + 1] not in ("s", "m", "h", "d", "w", "y"):
        return j
    j += 1 + (text[j + 1 : j + 2] == "s")
    while text[j : j + 1] in _DIGITS and j < len(text):
        while text[j : j + 1] in _DIGITS and j < len(text):
            j += 1
        if text[j : j + 1] not in ("s", "m", "h", "d", "w"):
            return j
        j += 1 + (text[j + 1 : j + 2] == "s")
    return min(j + 1, len(text))  # the character that ended it is read too


def _continues_word(ch: str) -> bool:
    return ch != "" and (ch in _IDENT_START or ch in _DIGITS)


def _string(text: str, pos: int) -> Token:
    quote = text[pos]
    i = pos + 1
    if quote == "`":  # raw string: no escapes, may span lines
        end = text.find("`", i)
        if end < 0:
            raise error_at(text, pos, "unterminated raw string")
        return _StringToken(TokenKind.STRING, text[i:end], pos, end + 1 - pos)
    out = bytearray()
    while True:
        if i >= len(text) or text[i] == "\n":
            raise error_at(text, pos, "unterminated quoted string")
        ch = text[i]
        if ch == quote:
            break
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        i += 1
        esc = text[i : i + 1]
        if not esc:
            raise error_at(text, pos, "unterminated quoted string")
        if esc in _ESCAPES or esc == quote:
            out += _ESCAPES.get(esc, esc).encode()
            i += 1
        elif esc in _ESCAPE_DIGITS or esc in "01234567":
            width, base = _ESCAPE_DIGITS.get(esc, (3, 8))
            start = i + 1 if esc in _ESCAPE_DIGITS else i
            digits = text[start : start + width]
            allowed = "01234567" if base == 8 else "0123456789abcdefABCDEF"
            bad = next((c for c in digits if c not in allowed), None)
            if bad is not None:
                raise error_at(
                    text, pos, f"illegal character U+{ord(bad):04X} {bad!r} in escape sequence"
                )
            if len(digits) != width:
                raise error_at(text, pos, "escape sequence not terminated")
            code = int(digits, base)
            if esc in "xX" or base == 8:
                if code > 255:
                    raise error_at(text, pos, f"octal escape value > 255: {code}")
                out.append(code)  # a raw byte, as in Go
            else:
                out += chr(code).encode("utf-8", "surrogatepass")
            i = start + width
        else:
            raise error_at(text, pos, f"unknown escape sequence U+{ord(esc):04X} {esc!r}")
    # Bytes that are not UTF-8 (from \x escapes) survive as surrogate escapes,
    # so that e.g. an invalid label name can be reported with its real bytes.
    value = bytes(out).decode("utf-8", "surrogateescape")
    return _StringToken(TokenKind.STRING, value, pos, i + 1 - pos)
