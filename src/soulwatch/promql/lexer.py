"""The PromQL tokenizer.

It splits a query into :class:`Token` objects with their offsets. It knows
nothing about keywords: an identifier such as ``sum``, ``by`` or ``inf`` is an
``IDENT`` token and the parser decides, by context, whether it is a keyword,
a label name or a metric name (as Prometheus does in its grammar).
"""

from __future__ import annotations

import re
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

    def describe(self) -> str:
        """The token as error messages name it (``identifier "foo"``, ``"("``...)."""
        if self.kind is TokenKind.EOF:
            return "end of input"
        if self.kind in (TokenKind.OPERATOR, TokenKind.PUNCT):
            return f'"{self.text}"'
        shown = self.text if len(self.text) <= 20 else self.text[:20] + "..."
        return f"{self.kind.value} {shown!r}" if '"' in shown else f'{self.kind.value} "{shown}"'


_DIGITS = frozenset("0123456789")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_OPERATORS = ("==", "!=", "=~", "!~", "<=", ">=", "+", "-", "*", "/", "%", "^", "<", ">", "=")
_PUNCT = "(){}[],:@"
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
)
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
    """Split ``text`` into tokens, ending with an ``EOF`` token.

    Raises :class:`ParseError` for characters that start no token, unterminated
    strings, bad escapes and malformed numbers or durations.
    """
    tokens: list[Token] = []
    pos = 0
    brackets = 0  # inside [...] a ':' separates a subquery's range and step
    while pos < len(text):
        ch = text[pos]
        if ch in " \t\n\r":
            pos += 1
            continue
        if ch == "#":  # a comment runs to the end of the line
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
            continue
        if ch in _DIGITS or (ch == "." and text[pos + 1 : pos + 2] in _DIGITS):
            token = _number_or_duration(text, pos)
        elif ch in "\"'`":
            token = _string(text, pos)
        elif ch in _IDENT_START or (ch == ":" and not brackets):
            pattern = _IDENT_IN_BRACKETS if brackets else _IDENT
            match = pattern.match(text, pos)
            assert match is not None  # the first character always matches
            token = Token(TokenKind.IDENT, match.group(), pos)
        elif ch in _PUNCT:
            brackets += {"[": 1, "]": -1}.get(ch, 0)
            token = Token(TokenKind.PUNCT, ch, pos)
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
            if op is None:
                if ch == "!":
                    raise error_at(text, pos, "unexpected character after '!': expected '=' or '~'")
                raise error_at(text, pos, f"unexpected character: {ch!r}")
            token = Token(TokenKind.OPERATOR, op, pos)
        tokens.append(token)
        pos = token.pos + _source_length(text, token)
    tokens.append(Token(TokenKind.EOF, "", len(text)))
    return tokens


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
    duration = _DURATION.match(text, pos)
    number = _NUMBER.match(text, pos)
    assert number is not None
    if duration is not None and duration.end() > number.end():
        token = Token(TokenKind.DURATION, duration.group(), pos)
    else:
        token = Token(TokenKind.NUMBER, number.group(), pos)
    end = pos + len(token.text)
    if end < len(text) and _continues_word(text[end]):
        bad_end = end
        while bad_end < len(text) and _continues_word(text[bad_end]):
            bad_end += 1
        raise error_at(text, pos, f'bad number or duration syntax: "{text[pos:bad_end]}"')
    return token


def _continues_word(ch: str) -> bool:
    return ch in _IDENT_START or ch in _DIGITS or ch == "."


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
            try:
                if len(digits) != width:
                    raise ValueError(digits)
                code = int(digits, base)
            except ValueError:
                raise error_at(text, i - 1, f"invalid escape sequence \\{esc}{digits}") from None
            if esc in "xX" or base == 8:
                if code > 255:
                    raise error_at(text, i - 1, f"octal escape value > 255: {code}")
                out.append(code)  # a raw byte, as in Go
            else:
                out += chr(code).encode("utf-8", "surrogatepass")
            i = start + width
        else:
            raise error_at(text, i - 1, "unknown escape sequence")
    # Bytes that are not UTF-8 (from \x escapes) survive as surrogate escapes,
    # so that e.g. an invalid label name can be reported with its real bytes.
    value = bytes(out).decode("utf-8", "surrogateescape")
    return _StringToken(TokenKind.STRING, value, pos, i + 1 - pos)
