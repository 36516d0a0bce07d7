"""The parser against Prometheus's own parser (promtool 2.42), query by query.

Prometheus's test-script queries plus seeded random mutations of them
(deleted, inserted and truncated characters) are written as recording rules
and checked with ``promtool check rules``, which prints Prometheus's parse
error for each rule it rejects. For every query both parsers must agree on
accept/reject, and on a rejected query soulwatch must report the same
line:column and a message that starts with Prometheus's (soulwatch often
adds what was expected).

Prometheus 2.42 predates syntax that soulwatch follows from 3.x; queries
whose only problem for 2.42 is such syntax are left out: durations used as
numbers (``predict_linear(x[5m], 1h)``) and numbers as durations
(``foo[300]``, ``offset 60``), quoted label and metric names
(``{"a.b"="c"}``), functions added since (``sort_by_label``, ``limitk``...),
and ``start()``/``end()``/``step()`` as functions. Regular-expression
errors compare position only (Go's and Python's regex messages differ).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

from soulwatch.exceptions import ParseError
from soulwatch.promql.ast import AGGREGATIONS, FUNCTIONS
from soulwatch.promql.lexer import TokenKind, iter_tokens
from soulwatch.promql.parser import parse
from tests.helpers import need_binary, need_conformance

SEED = 4242
MUTATIONS = 1500
_EVAL = re.compile(r"^\s*eval(?:_\w+)?\s+(?:instant at \S+|range from \S+ to \S+ step \S+)\s+(.*)$")
_PROMTOOL_ERROR = re.compile(
    r'rule (\d+), "r\d+": could not parse expression: (\d+):(\d+): parse error: (.*)$'
)
# Prometheus 2.42's errors for syntax it did not have yet.
_OLDER_SYNTAX = (
    "missing unit character in duration",
    "unexpected duration",
    "bad duration syntax",
    "not a valid duration string",
    "unexpected colon",
    "<Item",  # 2.42 prints the '@' token oddly
)
_NEWER_FUNCTIONS = re.compile(r"\b(?:step|range|min_of|max_of)\s*\(")
_BARE_START_END = re.compile(r"(?<!@)(?<!@ )\b(?:start|end)\s*\(")
_MUTATION_PIECES = [
    *'(){}[],:@+-*/%^=!~<>" abc019.',
    "by",
    "on(",
    "offset",
    "sum",
    " bool ",
    "group_left",
    "5m",
    "and",
]


def _corpus() -> list[str]:
    queries = [
        match.group(1)
        for script in need_conformance()
        for line in script.read_text(encoding="utf-8").splitlines()
        if (match := _EVAL.match(line))
    ]
    rng = random.Random(SEED)
    mutated = []
    for _ in range(MUTATIONS):
        chars = list(rng.choice(queries))
        for _ in range(rng.randint(1, 2)):
            kind, at = rng.randint(0, 2), rng.randint(0, len(chars))
            if kind == 0 and chars:
                del chars[min(at, len(chars) - 1)]
            elif kind == 1:
                chars.insert(at, rng.choice(_MUTATION_PIECES))
            else:
                chars = chars[: max(at, 1)]
        mutated.append("".join(chars))
    return [q for q in dict.fromkeys(queries + mutated) if q.strip() and "\n" not in q]


def _uses_newer_syntax(query: str) -> bool:
    """Newer syntax: durations as numbers and back, quoted names, start()/step() functions."""
    if _NEWER_FUNCTIONS.search(query) or _BARE_START_END.search(query):
        return True
    previous: list[str] = ["", ""]
    braces = False
    try:
        for token in iter_tokens(query):
            if token.kind is TokenKind.PUNCT and token.text in "{}":
                braces = token.text == "{"
            if braces and token.kind is TokenKind.STRING and previous[-1] in ("{", ","):
                return True  # a quoted (UTF-8) label or metric name
            after_offset = previous[-1] == "offset" or (
                previous[-1] in ("-", "+") and previous[-2] == "offset"
            )
            in_range = previous[-1] in ("[", ":")
            if token.kind is TokenKind.DURATION and not (after_offset or in_range):
                return True
            if token.kind is TokenKind.NUMBER and (after_offset or in_range):
                return True
            previous.append(token.text.lower())
    except ParseError:
        return False
    return False


def _older_prometheus_rejects(message: str) -> bool:
    if any(part in message for part in _OLDER_SYNTAX):
        return True
    unknown = re.match(r'unknown function with name "(\w+)"', message)
    return unknown is not None and (
        unknown.group(1) in FUNCTIONS or unknown.group(1) in AGGREGATIONS
    )


def _prometheus_verdicts(promtool: str, queries: list[str], tmp_path: Path) -> dict[int, tuple]:
    lines = ["groups:", "- name: g", "  rules:"]
    for i, query in enumerate(queries):
        lines += [f"  - record: r{i}", f"    expr: {json.dumps(query)}"]
    rules = tmp_path / "rules.yml"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdicts: dict[int, tuple] = {}
    for line in (done.stdout + done.stderr).splitlines():
        match = _PROMTOOL_ERROR.search(line)
        if match:
            index, line_no, column, message = match.groups()
            verdicts[int(index) - 1] = (int(line_no), int(column), message)
    return verdicts


def test_parser_agrees_with_prometheus(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    queries = _corpus()
    theirs = _prometheus_verdicts(promtool, queries, tmp_path)
    assert len(queries) > 2000
    assert 500 < len(theirs) < len(queries)  # promtool really judged the queries

    disagreements = []
    both_rejected = 0
    for index, query in enumerate(queries):
        try:
            parse(query)
            ours = None
        except ParseError as exc:
            ours = (exc.line, exc.column, exc.reason)
        their = theirs.get(index)
        if their is None and ours is None:
            continue
        if their is None:
            disagreements.append(f"{query!r}: Prometheus accepts it, soulwatch says {ours}")
            continue
        if _older_prometheus_rejects(their[2]) or _uses_newer_syntax(query):
            continue
        if ours is None:
            disagreements.append(f"{query!r}: soulwatch accepts it, Prometheus says {their}")
            continue
        both_rejected += 1
        same_message = ours[2].startswith(their[2]) or "error parsing regexp" in their[2]
        if ours[:2] != their[:2] or not same_message:
            disagreements.append(f"{query!r}: soulwatch {ours}, Prometheus {their}")
    assert both_rejected > 700
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(
        disagreements[:50]
    )
