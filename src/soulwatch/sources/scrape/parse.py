"""A fast parser for the Prometheus text format (0.0.4) and OpenMetrics 1.0.

Most lines of a scrape repeat the previous scrape's series text exactly, so
the parser splits a line into its series text and its value with two string
searches and trusts the split only when the series text is already *known*
(a key of the caller's cache, which holds only fully validated series). Any
other line goes through the full tokenizer, which validates it and reports
the line and column of the first error. docs/scraping.md has the measurements
that made this the choice over ``prometheus_client.parser``.
"""

from __future__ import annotations

import operator
import re
from array import array
from collections.abc import Container, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from enum import Enum
from itertools import compress

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TEXT_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
_OM_TYPES = frozenset(
    {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"}
)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class Format(Enum):
    """The exposition formats soulwatch reads."""

    TEXT = "text/plain"
    OPENMETRICS = "application/openmetrics-text"


def format_of(content_type: str | None, fallback: Format = Format.TEXT) -> Format:
    """The format a ``Content-Type`` announces; ``fallback`` when missing or unknown."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == Format.OPENMETRICS.value:
        return Format.OPENMETRICS
    if media == Format.TEXT.value:
        return Format.TEXT
    return fallback


class ExpositionError(ValueError):
    """A malformed exposition; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int, column: int = 1) -> None:
        self.reason = message
        self.line = line
        self.column = column
        super().__init__(f"line {line}, column {column}: {message}")


@dataclass(frozen=True)
class MetricMetadata:
    """A metric family's ``# TYPE``, ``# HELP`` and ``# UNIT``, as Prometheus keeps them.

    The text format's ``untyped`` is kept as ``unknown``, as Prometheus does.
    """

    type: str = "unknown"
    help: str = ""
    unit: str = ""


@dataclass(frozen=True)
class SeriesText:
    """A parsed series text: the metric name and its labels in written order."""

    name: str
    labels: tuple[tuple[str, str], ...]


def decode_body(body: bytes) -> str:
    """The body as text; invalid UTF-8 is an :class:`ExpositionError` naming the line."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        column = exc.start - (body.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ExpositionError("invalid UTF-8", line=line, column=column) from None


def parse_series(text: str, line: int = 1) -> SeriesText:
    """Tokenize a complete series text such as ``foo{a="b"}``."""
    series, end = _series_at(text, 0, line)
    if text[end:].strip():
        raise ExpositionError("unexpected text after the series", line=line, column=end + 1)
    return series


def _series_at(text: str, pos: int, line: int) -> tuple[SeriesText, int]:
    m = _METRIC_NAME.match(text, pos)
    if m is None:
        raise ExpositionError("expected a metric name", line=line, column=pos + 1)
    name = m.group(0)
    i = m.end()
    n = len(text)
    labels: list[tuple[str, str]] = []
    if i < n and text[i] == "{":
        i += 1
        seen: set[str] = set()
        while True:
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == "}":
                i += 1
                break
            lm = _LABEL_NAME.match(text, i)
            if lm is None:
                raise ExpositionError("expected a label name or '}'", line=line, column=i + 1)
            lname = lm.group(0)
            i = lm.end()
            while i < n and text[i] in " \t":
                i += 1
            if i >= n or text[i] != "=":
                raise ExpositionError("expected '=' after a label name", line=line, column=i + 1)
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i >= n or text[i] != '"':
                raise ExpositionError(
                    "expected '\"' to open a label value", line=line, column=i + 1
                )
            i += 1
            close = text.find('"', i)
            if close != -1 and text.find("\\", i, close) == -1:
                value = text[i:close]  # the common case: no escapes
                i = close + 1
            else:
                value, i = _escaped_value(text, i, line)
            if lname in seen:
                raise ExpositionError(f"duplicate label name {lname!r}", line=line, column=i + 1)
            seen.add(lname)
            labels.append((lname, value))
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == ",":
                i += 1
                continue
            if i < n and text[i] == "}":
                i += 1
                break
            raise ExpositionError("expected ',' or '}' after a label", line=line, column=i + 1)
    return SeriesText(name, tuple(labels)), i


def _escaped_value(text: str, i: int, line: int) -> tuple[str, int]:
    """A label value with escapes, from just after its opening quote; returns the end too."""
    n = len(text)
    chars: list[str] = []
    while True:
        if i >= n:
            raise ExpositionError("unterminated label value", line=line, column=i + 1)
        c = text[i]
        if c == '"':
            return "".join(chars), i + 1
        if c == "\\":
            if i + 1 >= n:
                raise ExpositionError("unterminated escape", line=line, column=i + 1)
            nxt = text[i + 1]
            chars.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        chars.append(c)
        i += 1


def _float(token: str, line: int, column: int) -> float:
    if "_" in token:
        raise ExpositionError(f"invalid value {token!r}", line=line, column=column)
    try:
        return float(token)
    except ValueError:
        raise ExpositionError(f"invalid value {token!r}", line=line, column=column) from None


def _timestamp(token: str, fmt: Format, line: int, column: int) -> int:
    try:
        if "_" in token:
            raise ValueError(token)
        if fmt is Format.OPENMETRICS:
            return round(float(token) * 1000)
        return int(token)
    except ValueError:
        raise ExpositionError(f"invalid timestamp {token!r}", line=line, column=column) from None


def samples(
    text: str,
    fmt: Format,
    known: Container[str] = (),
    metadata: MutableMapping[str, list[str]] | None = None,
) -> Iterator[tuple[str, float, int | None, int]]:
    """Yield ``(series_text, value, timestamp_ms or None, line)`` for every sample line.

    With ``metadata``, the ``# TYPE``, ``# HELP`` and ``# UNIT`` lines met
    are recorded in it by family name as ``[type, help, unit]`` lists (plain
    lists: this runs per scrape; :func:`metadata_of` makes them
    :class:`MetricMetadata`).

    ``known`` holds series texts already validated (the scraper's cache); a
    line whose series text is not in it is fully tokenized, and its series
    text is then yielded in its exact written form. Malformed input raises
    :class:`ExpositionError` when it is reached.
    """
    om = fmt is Format.OPENMETRICS
    eof = False
    lines = text.split("\n")
    last = len(lines)
    strip_cr = not om and "\r" in text
    lineno = 0
    for raw in lines:
        lineno += 1
        if eof:
            if raw.strip():
                raise ExpositionError("content after '# EOF'", line=lineno)
            continue
        line = raw.rstrip("\r") if strip_cr else raw
        if line and line[0] in " \t":
            line = line.lstrip(" \t")
        if not line:
            if om and lineno != last:
                raise ExpositionError("empty line in OpenMetrics", line=lineno)
            continue
        if line[0] == "#":
            eof = _comment(line, om, lineno, metadata)
            continue
        # the last '}' ends the labels (values and timestamps have none); an OpenMetrics
        # exemplar also has braces, so such a line misses the cache and is tokenized
        brace = line.rfind("}")
        if brace != -1:
            key = line[: brace + 1]
            rest = line[brace + 1 :]
        else:
            sp = line.find(" ")
            key = line[:sp] if sp != -1 else line
            rest = line[sp:] if sp != -1 else ""
        if key not in known:
            _series, end = _series_at(line, 0, lineno)
            key = line[:end]
            rest = line[end:]
        if om:
            hash_at = rest.find(" # ")
            if hash_at != -1:
                rest = rest[:hash_at]
        parts = rest.split()
        if not parts:
            raise ExpositionError("expected a value", line=lineno, column=len(line) + 1)
        token = parts[0]
        try:
            value = float(token)
        except ValueError:
            value = _float(token, lineno, len(key) + 2)  # raises, naming the column
        if "_" in token:  # Python's float() accepts "1_000"; the exposition formats do not
            _float(token, lineno, len(key) + 2)
        if len(parts) == 1:
            yield key, value, None, lineno
        elif len(parts) == 2:
            yield (
                key,
                value,
                _timestamp(parts[1], fmt, lineno, len(line) - len(parts[1]) + 1),
                lineno,
            )
        else:
            raise ExpositionError("unexpected text after the timestamp", line=lineno)
    if om and not eof:
        raise ExpositionError("OpenMetrics exposition does not end with '# EOF'", line=lineno)


class Layout:
    """Where the values are in a body whose sample lines are all ``<series text> <value>``.

    Most targets expose the same series in the same order every scrape, and
    only the values change. A layout is built from a body the full parser
    accepted (:meth:`of`); :meth:`values` then reads a later body with the
    same lines but for the values using a few whole-list operations (split,
    prefix removal, a length check, ``float``) instead of a Python loop per
    line, or
    returns ``None`` when the body differs in any other way, and the caller
    parses it with :func:`samples`.

    The shortcut yields exactly what :func:`samples` would: a line that starts
    with a validated series text and a space, followed by one token ``float``
    accepts (no ``_``), is that series with that value and no timestamp;
    every other line (comments, blank lines) must be identical to the one the
    layout was built from, so its metadata is too.
    """

    __slots__ = ("_fixed", "_mask", "_other", "_prefixes", "fmt")

    def __init__(
        self,
        fmt: Format,
        prefixes: list[str],
        mask: list[bool],
        other: list[tuple[int, str]],
    ) -> None:
        self.fmt = fmt
        self._prefixes = prefixes  # "<series text> " of each sample line, in order
        self._mask = mask  # which lines are sample lines
        self._other = other  # (line index, exact text) of every other line
        # the characters of a body of this layout that are not values: newlines,
        # the other lines, the prefixes
        self._fixed = len(mask) - 1 + sum(len(t) for _, t in other) + sum(map(len, prefixes))

    @classmethod
    def of(cls, text: str, fmt: Format, known: Container[str]) -> Layout | None:
        """The layout of ``text``, a body the parser accepted in format ``fmt``.

        ``known`` holds validated series texts (the scraper's cache, which
        must hold every series text of ``text``). ``None`` unless every sample
        line is ``<series text> <value>`` with a known series text: a line
        with a timestamp, an exemplar or other spacing has no layout.
        """
        lines = text.split("\n")
        mask = [bool(line) and line[0] != "#" for line in lines]
        texts = [line.rpartition(" ")[0] for line in compress(lines, mask)]
        if not all(map(known.__contains__, texts)):
            return None
        other = list(compress(enumerate(lines), map(operator.not_, mask)))
        return cls(fmt, [t + " " for t in texts], mask, other)

    def values(self, text: str) -> array[float] | None:
        """The values of ``text``'s sample lines in order, or ``None`` if its layout differs."""
        lines = text.split("\n")
        if len(lines) != len(self._mask):
            return None
        for i, line in self._other:
            if lines[i] != line:
                return None
        tails = list(map(str.removeprefix, compress(lines, self._mask), self._prefixes))
        # A prefix removed shortens its line by its length; one that did not match
        # leaves the whole line. So the tails are exactly the values' characters
        # only if every sample line starts with its prefix.
        if sum(map(len, tails)) != len(text) - self._fixed:
            return None
        if "_" in "".join(tails):  # float() accepts 1_000; the exposition formats do not
            return None
        try:
            # float() also rejects a second token (a timestamp), braces and empty tails
            return array("d", map(float, tails))
        except ValueError:
            return None


def metadata_of(raw: Mapping[str, list[str]]) -> dict[str, MetricMetadata]:
    """The ``[type, help, unit]`` lists recorded by :func:`samples` as :class:`MetricMetadata`."""
    return {name: MetricMetadata(*entry) for name, entry in raw.items()}


def _entry(metadata: MutableMapping[str, list[str]], name: str) -> list[str]:
    entry = metadata.get(name)
    if entry is None:
        entry = metadata[name] = ["unknown", "", ""]
    return entry


def _comment(
    line: str, om: bool, lineno: int, metadata: MutableMapping[str, list[str]] | None
) -> bool:
    """Validate a ``#`` line (recording TYPE/HELP/UNIT in ``metadata``); True for ``# EOF``."""
    if om and line.rstrip() == "# EOF":
        return True
    parts = line.split(None, 3)
    if len(parts) >= 2 and parts[1] == "TYPE":
        if len(parts) < 4:
            raise ExpositionError("'# TYPE' needs a metric name and a type", line=lineno)
        if not _METRIC_NAME.fullmatch(parts[2]):
            raise ExpositionError(f"invalid metric name {parts[2]!r} in '# TYPE'", line=lineno)
        kind = parts[3].strip()
        if kind not in (_OM_TYPES if om else _TEXT_TYPES):
            raise ExpositionError(f"invalid metric type {kind!r}", line=lineno)
        if metadata is not None:
            _entry(metadata, parts[2])[0] = "unknown" if kind == "untyped" else kind
    elif metadata is not None and len(parts) >= 3 and parts[1] in ("HELP", "UNIT"):
        rest = parts[3] if len(parts) == 4 else ""
        if parts[1] == "HELP":
            _entry(metadata, parts[2])[1] = _unescape_help(rest.rstrip("\r"))
        else:
            _entry(metadata, parts[2])[2] = rest.strip()
    return False


def _unescape_help(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ("\\", "n"):
            out.append("\n" if text[i + 1] == "n" else "\\")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)
