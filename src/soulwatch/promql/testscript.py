"""Parse Prometheus's PromQL test scripts (the ``promqltest`` format).

A script is ``load <step>`` blocks of series in the promtool expanding
notation, ``clear``, and ``eval`` commands with expected results and
``expect`` lines. :func:`parse_script` turns it into commands that
:mod:`soulwatch.promql.promqltest` runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from soulwatch.exceptions import ConfigError, ParseError
from soulwatch.promql.lexer import TokenKind, tokenize
from soulwatch.promql.parser import parse_duration
from soulwatch.tsdb.model import STALE_NAN, Labels

_EVAL = re.compile(
    r"^eval(?:_(?P<mod>fail|warn|ordered|info))?\s+"
    r"(?:instant\s+(?:at\s+(?P<at>\S+))?|"
    r"range\s+from\s+(?P<start>\S+)\s+to\s+(?P<end>\S+)\s+step\s+(?P<step>\S+))"
    r"\s+(?P<query>.+)$"
)
_EXPECT = re.compile(
    r"^expect\s+(?P<kind>ordered|fail|warn|no_warn|info|no_info)"
    r"(?:\s+(?P<how>regex|msg):(?P<text>.+))?$"
)
_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$")
_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(\S+)$")
_STEP_POINTS = re.compile(
    r"^(?P<start>[-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|inf|nan))"
    r"(?:(?P<sign>[-+])(?P<delta>[0-9.]+(?:e[-+]?[0-9]+)?|inf|nan))?x(?P<times>[0-9]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Point:
    """An expected or loaded point: a float, omitted (``_``) or a native histogram."""

    value: float = 0.0
    omitted: bool = False
    histogram: bool = False


@dataclass
class LoadCommand:
    """``load <step>``: series and their points."""

    line: int
    step_ms: int
    series: list[tuple[Labels, list[Point]]]
    nhcb: bool = False
    #: Series given start timestamps by ``@st`` lines (not loaded: soulwatch has none).
    start_timestamps: list[Labels] = field(default_factory=list)


@dataclass
class ClearCommand:
    """``clear``: drop all loaded data."""

    line: int


@dataclass
class Expectation:
    """An ``expect`` line: its kind and, optionally, an exact message or a regex."""

    kind: str
    message: str | None = None
    pattern: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        """Whether an error or annotation text satisfies this expectation."""
        if self.pattern is not None:
            return self.pattern.search(text) is not None
        if self.message is not None:
            return self.message == text
        return True

    def describe(self) -> str:
        """The expected message or pattern, for failure reports."""
        if self.pattern is not None:
            return f"pattern {self.pattern.pattern!r}"
        return f"message {self.message!r}"


@dataclass
class EvalCommand:
    """An ``eval`` case: the query, its times, expectations and expected results."""

    line: int
    query: str
    start_ms: int
    end_ms: int = 0
    step_ms: int = 0
    is_range: bool = False
    expects: list[Expectation] = field(default_factory=list)
    expected: list[tuple[Labels | None, list[Point], int]] = field(default_factory=list)
    expected_string: str | None = None
    range_vector: tuple[int, int, int] | None = None
    histogram_expected: bool = False

    def has(self, kind: str) -> bool:
        """Whether any ``expect <kind>`` line is present."""
        return any(e.kind == kind for e in self.expects)

    def of(self, kind: str) -> list[Expectation]:
        """The ``expect <kind>`` lines."""
        return [e for e in self.expects if e.kind == kind]

    @property
    def expect_scalar(self) -> bool:
        """Whether the expected result is a bare number (a scalar)."""
        return bool(self.expected) and self.expected[0][0] is None


Command = LoadCommand | ClearCommand | EvalCommand


class _LineError(ValueError):
    """A script error on a line other than the command's first."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def parse_script(text: str, file: str = "<script>") -> list[Command]:
    """Parse a test script into its commands.

    Raises :class:`~soulwatch.exceptions.ConfigError` naming the file and line
    of a malformed command.
    """
    lines = [_strip_comment(raw) for raw in text.split("\n")]
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        word = line.split(None, 1)[0].lower()
        try:
            if word == "clear":
                commands.append(ClearCommand(i + 1))
                i += 1
            elif word.startswith("load"):
                i = _parse_load(lines, i, commands)
            elif word.startswith("eval"):
                i = _parse_eval(lines, i, commands)
            else:
                raise ValueError(f"invalid command {line!r}")
        except _LineError as exc:
            raise ConfigError(str(exc), file=file, line=exc.line) from None
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=i + 1) from None
    return commands


def _strip_comment(raw: str) -> str:
    line = raw.strip()
    return "" if line.startswith("#") else line


def _block(lines: list[str], start: int) -> Iterator[tuple[int, str]]:
    """The non-empty lines after ``start`` up to the next empty line."""
    j = start + 1
    while j < len(lines) and lines[j]:
        yield j, lines[j]
        j += 1


def _parse_load(lines: list[str], i: int, commands: list[Command]) -> int:
    match = _LOAD.match(lines[i])
    if match is None:
        raise ValueError("invalid load command (load[_with_nhcb] <step>)")
    step_ms = _duration(match.group(2))
    load = LoadCommand(i + 1, step_ms, [], nhcb=match.group(1) is not None)
    end = i
    for end, text in _block(lines, i):
        try:
            start_timestamps = _start_timestamp_series(text)
            if start_timestamps is not None:
                load.start_timestamps.append(start_timestamps)
                continue
            load.series.append(_parse_series_line(text))
        except ValueError as exc:
            raise _LineError(str(exc), end + 1) from None
    commands.append(load)
    return end + 1


def _parse_eval(lines: list[str], i: int, commands: list[Command]) -> int:
    match = _EVAL.match(lines[i])
    if match is None:
        raise ValueError(
            "invalid evaluation command; expected 'eval instant at <time> <query>' "
            "or 'eval range from <t0> to <t1> step <step> <query>'"
        )
    query = match.group("query")
    if match.group("step") is not None:
        cmd = EvalCommand(
            i + 1,
            query,
            _duration(match.group("start")),
            _duration(match.group("end")),
            _duration(match.group("step")),
            is_range=True,
        )
        if cmd.end_ms < cmd.start_ms:
            raise ValueError("end timestamp is before start timestamp")
    else:
        cmd = EvalCommand(i + 1, query, _duration(match.group("at") or "0"))
    mod = match.group("mod")
    if mod is not None:
        cmd.expects.append(Expectation(mod))
    end = i
    position = 0
    for end, text in _block(lines, i):
        range_match = _EXPECT_RANGE.match(text)
        if range_match is not None:
            cmd.range_vector = tuple(_duration(g) for g in range_match.groups())  # type: ignore[assignment]
            continue
        if text.startswith("expect string"):
            cmd.expected_string = _go_unquote(text[len("expect string") :].strip())
            continue
        if text.split(" ")[0] == "expect":
            expect = _EXPECT.match(text)
            if expect is None:
                raise _LineError(f"invalid expect statement {text!r}", end + 1)
            cmd.expects.append(_make_expect(expect))
            continue
        if text.startswith(("expected_fail_message", "expected_fail_regexp")):
            key, _, rest = text.partition(" ")
            regex = key.endswith("regexp")
            cmd.expects.append(
                Expectation(
                    "fail",
                    None if regex else rest.strip(),
                    re.compile(rest.strip()) if regex else None,
                )
            )
            continue
        number = _try_number(text)
        if number is not None:
            cmd.expected = [(None, [Point(number)], 0)]
            continue
        position += 1
        try:
            labels, points = _parse_series_line(text)
        except ValueError as exc:
            raise _LineError(str(exc), end + 1) from None
        cmd.histogram_expected |= any(p.histogram for p in points)
        cmd.expected.append((labels, points, position))
    commands.append(cmd)
    return end + 1


def _make_expect(match: re.Match[str]) -> Expectation:
    kind = match.group("kind")
    how, text = match.group("how"), match.group("text")
    if how is None:
        return Expectation(kind)
    text = text.strip()
    if how == "msg":
        return Expectation(kind, message=text)
    return Expectation(kind, pattern=re.compile(text))


def _duration(text: str) -> int:
    if text == "0":
        return 0
    return parse_duration(text)


def _go_unquote(text: str) -> str:
    tokens = tokenize(text)
    if len(tokens) != 2 or tokens[0].kind is not TokenKind.STRING:
        raise ValueError(f"expected a quoted string, got {text!r}")
    return tokens[0].text


def _try_number(text: str) -> float | None:
    try:
        return _parse_float(text)
    except ValueError:
        return None


def _parse_float(text: str) -> float:
    lower = text.lower()
    if lower.lstrip("+-") in ("inf", "nan"):
        return float(lower)
    if lower.lstrip("+-").startswith("0x"):
        sign = -1.0 if lower.startswith("-") else 1.0
        return sign * int(lower.lstrip("+-"), 16)
    if not re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?", lower):
        raise ValueError(f"invalid number {text!r}")
    return float(lower)


def _start_timestamp_series(text: str) -> Labels | None:
    """The series of a ``metric{...}@st <offsets>`` line (its samples' start times), else None.

    soulwatch stores no start timestamps; the runner only needs to know which
    series have them.
    """
    desc_end = _series_desc_end(text)
    desc = text[:desc_end]
    if desc.endswith("@st"):
        return _parse_labels(desc[: -len("@st")])
    if text.startswith("@st", desc_end) and (
        len(text) == desc_end + 3 or text[desc_end + 3].isspace()
    ):
        return _parse_labels(desc)
    return None


def _parse_series_line(text: str) -> tuple[Labels, list[Point]]:
    """``metric{a="b"} 1 2+3x4 _ stale {{...}}`` → labels and points."""
    desc_end = _series_desc_end(text)
    labels = _parse_labels(text[:desc_end])
    return labels, _expand_points(text[desc_end:])


def _series_desc_end(text: str) -> int:
    brace = text.find("{")
    space = re.search(r"\s", text)
    if brace < 0 or (space is not None and space.start() < brace):
        return space.start() if space is not None else len(text)
    quote = ""
    i = brace
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "}":
            return i + 1
        i += 1
    raise ValueError(f"unterminated label set in {text!r}")


def _parse_labels(desc: str) -> Labels:
    try:
        tokens = tokenize(desc)
    except ParseError as exc:
        raise ValueError(f"invalid series {desc!r}: {exc.reason}") from None
    pairs: dict[str, str] = {}
    i = 0
    if tokens[0].kind is TokenKind.IDENT:
        pairs["__name__"] = tokens[0].text
        i = 1
    if tokens[i].kind is TokenKind.PUNCT and tokens[i].text == "{":
        i += 1
        while not (tokens[i].kind is TokenKind.PUNCT and tokens[i].text == "}"):
            name_tok = tokens[i]
            if name_tok.kind is TokenKind.STRING and tokens[i + 1].text in (",", "}"):
                pairs["__name__"] = name_tok.text
                i += 1
            else:
                eq, value = tokens[i + 1], tokens[i + 2]
                if (
                    name_tok.kind not in (TokenKind.IDENT, TokenKind.STRING)
                    or eq.text != "="
                    or value.kind is not TokenKind.STRING
                ):
                    raise ValueError(f"invalid series {desc!r}")
                pairs[name_tok.text] = value.text
                i += 3
            if tokens[i].kind is TokenKind.PUNCT and tokens[i].text == ",":
                i += 1
        i += 1
    if tokens[i].kind is not TokenKind.EOF:
        raise ValueError(f"invalid series {desc!r}")
    return Labels(sorted(pairs.items()))


def _expand_points(text: str) -> list[Point]:
    points: list[Point] = []
    for item in _point_items(text):
        if item.startswith("{{"):
            times = 1
            tail = item[item.rfind("}}") + 2 :]
            if tail.startswith("x"):
                times = int(tail[1:]) + 1
            points.extend([Point(histogram=True)] * times)
        elif item == "_":
            points.append(Point(omitted=True))
        elif item.startswith("_x"):
            points.extend([Point(omitted=True)] * int(item[2:]))
        elif item == "stale":
            points.append(Point(STALE_NAN))
        elif (match := _STEP_POINTS.match(item)) is not None:
            value = _parse_float(match.group("start"))
            delta = _parse_float(match.group("delta") or "0")
            if match.group("sign") == "-":
                delta = -delta
            for _ in range(int(match.group("times")) + 1):
                points.append(Point(value))
                value += delta
        else:
            points.append(Point(_parse_float(item)))
    return points


def _point_items(text: str) -> Iterator[str]:
    """Split on whitespace, keeping ``{{ ... }}xN`` histograms whole."""
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text.startswith("{{", i):
            end = text.find("}}", i)
            if end < 0:
                raise ValueError("unterminated native histogram")
            j = end + 2
            if text[j : j + 3] in ("+{{", "-{{"):  # {{a}}+{{b}}xN: an expanding histogram
                end = text.find("}}", j)
                if end < 0:
                    raise ValueError("unterminated native histogram")
                j = end + 2
            while j < len(text) and not text[j].isspace():
                j += 1
            yield text[i:j]
            i = j
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        yield text[i:j]
        i = j
