"""The Go-template subset: output must match what Prometheus renders.

The parity tests run the same templates through promtool; these pin the
Go formatting rules one by one.
"""

from __future__ import annotations

import math

import pytest

from soulwatch.rules.gofmt import format_float, sprintf
from soulwatch.rules.templates import TemplateData, TemplateError, expand, parse_template

DATA = TemplateData({"instance": "api-1", "job": "backend"}, 0.5, {"cluster": "eu-1"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_values_print_like_go(value: float, text: str) -> None:
    assert format_float(value) == text
    assert expand("{{ $value }}", TemplateData({}, value)) == text


@pytest.mark.parametrize(
    ("template", "value", "text"),
    [
        ("{{ $value | humanize }}", 1234567, "1.235M"),
        ("{{ $value | humanize }}", 0.0012, "1.2m"),
        ("{{ $value | humanize }}", 0, "0"),
        ("{{ humanize1024 $value }}", 2048, "2ki"),
        ("{{ humanizeDuration $value }}", 90061, "1d 1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 59.5, "59.5s"),
        ("{{ humanizeDuration $value }}", 0.25, "250ms"),
        ("{{ humanizePercentage $value }}", 0.0523, "5.23%"),
        ("{{ humanizeTimestamp $value }}", 1700000000, "2023-11-14 22:13:20 +0000 UTC"),
        ('{{ printf "%.1f%%" $value }}', 12.345, "12.3%"),
        ('{{ printf "%d" $value }}', 5.0, "%!d(float64=5)"),
        ('{{ printf "%s=%v" "x" $value }}', 2.0, "x=2"),
    ],
)
def test_functions(template: str, value: float, text: str) -> None:
    assert expand(template, TemplateData({}, float(value))) == text


def test_labels_external_labels_and_control_flow() -> None:
    assert expand("{{ $labels.instance }} in {{ $externalLabels.cluster }}", DATA) == (
        "api-1 in eu-1"
    )
    assert expand("[{{ $labels.missing }}]", DATA) == "[]"
    assert expand("{{ .Labels.job | toUpper }}", DATA) == "BACKEND"
    template = (
        '{{ if gt $value 1.0 }}high{{ else if eq $labels.job "backend" }}be{{ else }}low{{ end }}'
    )
    assert expand(template, DATA) == "be"
    assert expand('a {{- " b " -}} c', DATA) == "a b c"
    assert expand('{{ $v := printf "%.0f" 2.6 }}v={{ $v }}', DATA) == "v=3"
    assert expand("{{/* a comment */}}ok", DATA) == "ok"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ nope }}", 'function "nope" not defined'),
        ("{{ if true }}x", "missing {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ $value ", "unclosed action"),
        ("{{ range $labels }}x{{ end }}", "not supported"),
    ],
)
def test_bad_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_template(template)


def test_a_failing_function_raises() -> None:
    with pytest.raises(TemplateError, match="invalid syntax"):
        expand('{{ humanize "abc" }}', DATA)


def test_sprintf_reports_missing_and_extra_arguments() -> None:
    assert sprintf("%s %s", ["a"]) == "a %!s(MISSING)"
    assert sprintf("%s", ["a", 1]) == "a%!(EXTRA int=1)"


@pytest.mark.parametrize(
    "source",
    ["", "critical", "a {{/* a comment */}}b", "  spaced  {{- /* trimmed */ -}}  out  ", "}} {"],
)
def test_a_template_without_actions_renders_as_its_nodes_do(source: str) -> None:
    # Fixed text (a severity label) is returned as parsed, without running the nodes.
    template = parse_template(source)
    data = TemplateData(labels={"job": "api"}, value=1.0)
    walked = type(template)(template.source, template.nodes).render(data)
    assert template.text is not None
    assert template.render(data) == walked == expand(source, data)


def test_a_template_with_an_action_is_not_fixed_text() -> None:
    template = parse_template("{{ $labels.job }} is down")
    assert template.text is None
    assert template.render(TemplateData(labels={"job": "api"}, value=1.0)) == "api is down"
