"""Label regexes: Prometheus's syntax, its accept/reject, its matching, in linear time.

The accept/reject table is checked twice: against what Prometheus 3 does
(soulwatch's parser), and against Debian's ``promtool`` (Prometheus 2.42)
through ``promtool check rules`` on a rule file that uses each pattern. A
few patterns changed between 2.42 and 3.x (Go's parser learned ``(?<name>``,
and 3.x parses the pattern alone instead of inside ``^(?:...)$``); they are
marked and left out of the promtool comparison only.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from soulwatch.exceptions import ParseError
from soulwatch.promql.engine import Engine
from soulwatch.promql.parser import parse
from soulwatch.rules.loader import check_rule_file
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Matcher, MatchType
from soulwatch.tsdb.regex import RegexError, compile_regex
from tests.helpers import need_binary

# (pattern, accepted by Prometheus 3, Go's message when refused)
PATTERNS: list[tuple[str, bool, str]] = [
    ("(?=a)", False, "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!a)", False, "invalid or unsupported Perl syntax: `(?!`"),
    ("(a)\\1", False, "invalid escape sequence: `\\1`"),
    ("a{1001}", False, "invalid repeat count: `{1001}`"),
    ("a{2,1001}", False, "invalid repeat count: `{2,1001}`"),
    ("(a{1000}){1000}", False, "invalid repeat count: `{1000}`"),
    ("(?x)a b", False, "invalid or unsupported Perl syntax: `(?x`"),
    ("(?P=n)", False, "invalid or unsupported Perl syntax: `(?P`"),
    ("[[:foo:]]", False, "invalid character class range: `[:foo:]`"),
    ("\\p{Foo}", False, "invalid character class range: `\\p{Foo}`"),
    ("\\C", False, "invalid escape sequence: `\\C`"),
    ("\\Z", False, "invalid escape sequence: `\\Z`"),
    ("\\8", False, "invalid escape sequence: `\\8`"),
    ("\\e", False, "invalid escape sequence: `\\e`"),
    ("a**", False, "invalid nested repetition operator: `**`"),
    ("a++", False, "invalid nested repetition operator: `++`"),
    ("a?+", False, "invalid nested repetition operator: `?+`"),
    ("a{2}{3}", False, "invalid nested repetition operator: `{2}{3}`"),
    ("[z-a]", False, "invalid character class range: `z-a`"),
    ("*a", False, "missing argument to repetition operator: `*`"),
    ("+", False, "missing argument to repetition operator: `+`"),
    ("x{2,1}", False, "invalid repeat count: `{2,1}`"),
    ("x{1001,}", False, "invalid repeat count: `{1001,}`"),
    ("(?P<>a)", False, "invalid named capture: `(?P<>`"),
    ("(?P<a-b>x)", False, "invalid named capture: `(?P<a-b>`"),
    ("\\x{110000}", False, "invalid escape sequence: `\\x{110000`"),
    ("[a-\\d]", False, "invalid escape sequence: `\\d`"),
    ("\\k<n>", False, "invalid escape sequence: `\\k`"),
    ("\\cA", False, "invalid escape sequence: `\\c`"),
    ("\\u0041", False, "invalid escape sequence: `\\u`"),
    ("\\G", False, "invalid escape sequence: `\\G`"),
    ("(?#comment)", False, "invalid or unsupported Perl syntax: `(?#`"),
    ("(?>a)", False, "invalid or unsupported Perl syntax: `(?>`"),
    ("x**?", False, "invalid nested repetition operator: `**?`"),
    ("a{1000}", True, ""),
    ("\\p{^Greek}", True, ""),
    ("\\P{Greek}", True, ""),
    ("[[:^alpha:]]", True, ""),
    ("[\\d-]", True, ""),
    ("\\Q\\E", True, ""),
    ("()*", True, ""),
    ("(|a)", True, ""),
    ("a{0}", True, ""),
    ("(?s-i:a)", True, ""),
    ("[[=a=]]", True, ""),
    ("a{,}", True, ""),
    ("(?U)a+?", True, ""),
    ("(?P<n>a)(?P<n>b)", True, ""),
    ("(?s).", True, ""),
    ("(?i)abc", True, ""),
    ("(?m)^a$", True, ""),
    ("(?U)a*", True, ""),
    ("(?P<n>a)", True, ""),
    ("[[:alpha:]]+", True, ""),
    ("\\p{Greek}", True, ""),
    ("\\pN", True, ""),
    ("\\z", True, ""),
    ("\\A", True, ""),
    ("\\b", True, ""),
    ("\\Qa.b\\E", True, ""),
    ("a*?", True, ""),
    ("\\x41", True, ""),
    ("\\x{263a}", True, ""),
    ("\\0", True, ""),
    ("\\12", True, ""),
    ("\\_", True, ""),
    ("\\d\\s\\w\\D\\S\\W", True, ""),
    (".*", True, ""),
    ("(a+)+$", True, ""),
    ("a|b|c", True, ""),
    ("foo|", True, ""),
    ("()", True, ""),
    ("a{,5}", True, ""),
    ("a{5,}", True, ""),
    ("[^]a]", True, ""),
    ("[]a]", True, ""),
    ("[\\d-z]", True, ""),
    ("(?i)(?-i)a", True, ""),
    ("(?-s).", True, ""),
]

# Where Prometheus 2.42 (the promtool here) and 3.x differ.
NEWER_THAN_PROMTOOL: list[tuple[str, bool, str]] = [
    ("(?<n>a)", True, ""),  # Go 1.22 added this spelling of a named group
    ("\\Q", True, ""),  # 2.42 compiled ^(?:\Q)$, quoting its own ")$"
    ("(?<=a)b", False, "invalid named capture: `(?<=a)b`"),  # 2.42: "unsupported Perl syntax"
    ("\\", False, "trailing backslash at end of expression: ``"),
    ("(a", False, "missing closing ): `(a`"),
    ("a)", False, "unexpected ): `a)`"),
    ("[a", False, "missing closing ]: `[a`"),  # 2.42 quoted "[a)$"
]


def _parse_outcome(pattern: str) -> tuple[bool, str]:
    try:
        parse(f"x{{v=~`{pattern}`}}")
    except ParseError as exc:
        return False, exc.reason
    return True, ""


@pytest.mark.parametrize(("pattern", "accepted", "message"), PATTERNS + NEWER_THAN_PROMTOOL)
def test_patterns_are_accepted_and_refused_as_prometheus_3_does(
    pattern: str, accepted: bool, message: str
) -> None:
    ok, reason = _parse_outcome(pattern)
    assert ok is accepted, reason
    if not accepted:
        assert reason == f"error parsing regexp: {message}"


def test_check_rules_agrees_with_promtool_on_every_pattern(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    lines = ["groups:", "- name: g", "  rules:"]
    for index, (pattern, _, _) in enumerate(PATTERNS):
        lines += [f"  - record: r{index}", "    expr: |", f"      x{{v=~`{pattern}`}}"]
    path = tmp_path / "patterns.yml"
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [promtool, "check", "rules", str(path)],
        check=False,  # it exits 1: most patterns are refused
        capture_output=True,
        text=True,
        timeout=60,
    )
    refused = {
        int(m.group(1)) - 1: m.group(2)
        for m in re.finditer(
            r'rule (\d+), "r\d+": could not parse expression: \d+:\d+: parse error: (.*)',
            out.stdout + out.stderr,
        )
    }
    _, problems = check_rule_file(path)
    ours = " ".join(str(p) for p in problems)
    for index, (pattern, accepted, message) in enumerate(PATTERNS):
        assert (index not in refused) is accepted, f"promtool on {pattern!r}: {refused.get(index)}"
        if not accepted:
            # Same error text as promtool, on the same rule.
            assert refused[index] == f"error parsing regexp: {message}"
            assert f"error parsing regexp: {message}" in ours
    assert len(problems) == sum(1 for _, accepted, _ in PATTERNS if not accepted)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("api", "api", True),
        ("api", "api-2", False),  # anchored: a prefix is not a match
        ("pi", "api", False),
        ("a|b", "ab", False),  # both alternatives are anchored
        ("a|b", "b", True),
        ("", "", True),
        ("", "x", False),
        ("foo|", "", True),
        ("a.c", "a\nc", True),  # Prometheus 3: '.' matches a newline
        (".*", "line1\nline2", True),
        ("(?-s)a.c", "a\nc", False),
        ("(?i)prod", "PrOd", True),
        (".*((?i)DUC).*", "proDuction", True),
        ("[[:upper:]]+", "ABC", True),
        ("\\p{Greek}+", "λόγος", True),
        ("caf.", "café", True),  # one character, not one byte
        ("a{2}", "aaa", False),
    ],
)
def test_matching_is_anchored_with_dot_matching_newline(
    pattern: str, value: str, matches: bool
) -> None:
    matcher = Matcher(MatchType.REGEX, "v", pattern)
    assert matcher.matches(value) is matches
    assert Matcher(MatchType.NOT_REGEX, "v", pattern).matches(value) is not matches
    # The remembered answer is the same the second time.
    assert matcher.matches(value) is matches


def test_refused_pattern_is_a_re_error_naming_the_problem() -> None:
    # Callers that validate config (silences, routes) catch re.error.
    with pytest.raises(re.error, match=r"invalid or unsupported Perl syntax: `\(\?=`"):
        Matcher(MatchType.REGEX, "job", "(?=a)")
    with pytest.raises(RegexError):
        compile_regex("a{1001}")


def test_catastrophic_pattern_answers_at_once() -> None:
    # With a backtracking engine this query ran for 25 s past a 3 s timeout.
    storage = MemoryStorage()
    storage.add(Labels.of({"__name__": "x", "v": "a" * 28 + "!"}), 0, 1.0)
    storage.add(Labels.of({"__name__": "x", "v": "a" * 29}), 0, 1.0)
    engine = Engine(storage, timeout_s=3.0)
    result = engine.instant('count(x{v=~"(a+)+$"})', 1000)
    assert [s.value for s in result.value] == [1.0]  # type: ignore[union-attr]


def test_label_replace_captures_through_re2() -> None:
    storage = MemoryStorage()
    storage.add(Labels.of({"__name__": "up", "instance": "web-1:9100"}), 0, 1.0)
    engine = Engine(storage)
    result = engine.instant(
        'label_replace(up, "host", "${name}-$2", "instance", "(?P<name>[a-z]+)-(\\\\d+):.*")', 0
    )
    assert [s.labels.get("host") for s in result.value] == ["web-1"]  # type: ignore[union-attr]
    with pytest.raises(Exception, match="invalid regular expression in label_replace"):
        engine.instant('label_replace(up, "a", "b", "instance", "(?=x)")', 0)
