"""The exposition parser: agreement with prometheus_client, and line-precise errors."""

from __future__ import annotations

import math
import struct

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from soulwatch.sources.scrape.parse import (
    ExpositionError,
    Format,
    Layout,
    format_of,
    parse_series,
    samples,
)


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    c = Counter("requests", "Requests.", ["method", "path"], registry=reg)
    c.labels("GET", '/a "quoted"\\path\nnewline').inc(3)
    c.labels("POST", "/b}{,=").inc(1.5)
    Gauge("temperature", "T.", registry=reg).set(-2.5e-3)
    h = Histogram("latency_seconds", "L.", ["route"], buckets=(0.1, 1, 2), registry=reg)
    for v in (0.05, 0.5, 1.5, 3):
        h.labels("/x").observe(v)
    Summary("size_bytes", "S.", registry=reg).observe(42)
    return reg


def _flatten(fmt: Format, text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for key, value, _ts, _line in samples(text, fmt):
        s = parse_series(key)
        out[(s.name, tuple(sorted(s.labels)))] = value
    return out


def test_agrees_with_prometheus_client_on_a_real_exposition() -> None:
    text = generate_latest(_registry()).decode()
    ours = _flatten(Format.TEXT, text)
    theirs = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    # the _created samples carry wall-clock values; compare everything
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k]) for k in ours)
    assert (
        ours[("requests_total", (("method", "GET"), ("path", '/a "quoted"\\path\nnewline')))] == 3
    )


def test_openmetrics_from_prometheus_client_parses_with_timestamps_in_seconds() -> None:
    text = generate_openmetrics(_registry()).decode()
    assert text.endswith("# EOF\n")
    ours = _flatten(Format.OPENMETRICS, text)
    assert ours[("latency_seconds_bucket", (("le", "+Inf"), ("route", "/x")))] == 4
    got = list(samples("a_total 1 1700000000.25\n# EOF\n", Format.OPENMETRICS))
    assert got == [("a_total", 1.0, 1_700_000_000_250, 1)]


def test_text_timestamps_are_milliseconds_and_exemplars_are_skipped() -> None:
    assert list(samples("a 1 1700000000123\n", Format.TEXT)) == [("a", 1.0, 1_700_000_000_123, 1)]
    om = 'a_total 2 # {trace_id="x y"} 1 1.5\n# EOF\n'
    assert list(samples(om, Format.OPENMETRICS)) == [("a_total", 2.0, None, 1)]


def test_special_values() -> None:
    got = {k: v for k, v, _, _ in samples("a NaN\nb +Inf\nc -Inf\nd 1e3\n", Format.TEXT)}
    assert math.isnan(got["a"])
    assert (got["b"], got["c"], got["d"]) == (math.inf, -math.inf, 1000.0)


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ('a{b="c"\n', Format.TEXT, "line 1, column 8: expected ',' or '}' after a label"),
        ("a 1\n\n9metric 1\n", Format.TEXT, "line 3, column 1: expected a metric name"),
        ('x{a="1",a="2"} 1\n', Format.TEXT, "line 1, column 14: duplicate label name 'a'"),
        ("a 1 2 3\n", Format.TEXT, "line 1, column 1: unexpected text after the timestamp"),
        ("a 1_000\n", Format.TEXT, "line 1, column 3: invalid value '1_000'"),
        ("a 1 12.5\n", Format.TEXT, "line 1, column 5: invalid timestamp '12.5'"),
        ("# TYPE a countr\n", Format.TEXT, "line 1, column 1: invalid metric type 'countr'"),
        ("a\n", Format.TEXT, "line 1, column 2: expected a value"),
        ("a_total 1\n", Format.OPENMETRICS, "does not end with '# EOF'"),
        ("a 1\n# EOF\nb 2\n", Format.OPENMETRICS, "line 3, column 1: content after '# EOF'"),
    ],
)
def test_malformed_input_names_line_and_column(text: str, fmt: Format, message: str) -> None:
    with pytest.raises(ExpositionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(samples(text, fmt))


def test_the_fast_path_for_known_series_gives_the_same_samples() -> None:
    text = 'a{b="x}y"} 1\nc 2 1000\nd{e="f"} 3\n'
    cold = list(samples(text, Format.TEXT))
    assert cold[0] == ('a{b="x}y"}', 1.0, None, 1)  # the '}' inside a value does not split
    warm = list(samples(text, Format.TEXT, {key for key, *_ in cold}))
    assert warm == cold


def test_content_type_negotiation() -> None:
    assert format_of("application/openmetrics-text; version=1.0.0; charset=utf-8") is (
        Format.OPENMETRICS
    )
    assert format_of("text/plain; version=0.0.4") is Format.TEXT
    assert format_of(None) is Format.TEXT


_LAYOUT_BODY = """# HELP requests Requests.
# TYPE requests counter
requests{path="/a b}",code="200"} 10
requests{path="/b",code="500"} 2

plain 7
"""

# Later bodies: each either reads through the layout with the values the full
# parser gives, or is refused by it (and then parsed in full).
_LATER = [
    _LAYOUT_BODY,
    _LAYOUT_BODY.replace(" 10\n", " 11\n").replace("plain 7", "plain -Inf"),
    _LAYOUT_BODY.replace(" 10\n", " NaN\n").replace(" 2\n", " 1e3 \n"),
    _LAYOUT_BODY.replace("plain 7", "plain 8 1700000000000"),  # a timestamp
    _LAYOUT_BODY.replace("plain 7", "plain 1_000"),
    _LAYOUT_BODY.replace("plain 7", "plain7"),
    _LAYOUT_BODY.replace("plain 7", "plainx 7"),
    _LAYOUT_BODY.replace("plain 7", "  plain 7"),
    _LAYOUT_BODY.replace("plain 7", "plain "),
    _LAYOUT_BODY.replace("plain 7", "plain 7}"),
    _LAYOUT_BODY.replace('requests{path="/b"', 'requests{path="/c"'),  # the same length
    _LAYOUT_BODY.replace("Requests.", "Requests!"),
    _LAYOUT_BODY.replace("\n\n", "\n"),
    _LAYOUT_BODY.replace("\n\n", "\n# a comment\n"),
    _LAYOUT_BODY.replace(",code", ", code").replace("plain 7", "plain 77"),  # lengths even out
    _LAYOUT_BODY + "extra 1\n",
    _LAYOUT_BODY.replace('"} 10', '"}10'),
    _LAYOUT_BODY.replace('"} 10', '"}\t10'),
    _LAYOUT_BODY.replace("plain 7", "7"),  # a bare number where a sample line was
    _LAYOUT_BODY.replace("plain 7", "nan"),
]


@pytest.mark.parametrize("later", _LATER)
def test_a_layout_reads_a_later_body_exactly_as_the_parser_or_not_at_all(later: str) -> None:
    keys = [key for key, *_ in samples(_LAYOUT_BODY, Format.TEXT)]
    known = set(keys)
    layout = Layout.of(_LAYOUT_BODY, Format.TEXT, known)
    assert layout is not None
    got = layout.values(later)
    try:
        parsed = list(samples(later, Format.TEXT))
    except ExpositionError:
        assert got is None
        return
    if got is None:  # refused: the full parser reads it
        return
    assert [k for k, *_ in parsed] == keys
    assert all(ts is None for *_, ts, _ in parsed)
    assert [struct.pack("<d", v) for v in got] == [struct.pack("<d", v) for _, v, *_ in parsed]


def test_the_layout_shortcut_is_taken_for_new_values() -> None:
    keys = [key for key, *_ in samples(_LAYOUT_BODY, Format.TEXT)]
    known = set(keys)
    layout = Layout.of(_LAYOUT_BODY, Format.TEXT, known)
    assert layout is not None
    assert list(layout.values(_LATER[1]) or []) == [11.0, 2.0, -math.inf]
    assert layout.values(_LATER[2]) is not None  # NaN, and a value with a space after it
    for different in _LATER[3:]:  # anything but a value differs, or a value is invalid
        assert layout.values(different) is None, different
    # a body whose samples carry timestamps has no layout
    stamped = _LAYOUT_BODY.replace("plain 7", "plain 7 1700000000000")
    assert Layout.of(stamped, Format.TEXT, {k for k, *_ in samples(stamped, Format.TEXT)}) is None
