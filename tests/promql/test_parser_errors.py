"""Parse errors name the line, the column and what was expected there."""

from __future__ import annotations

import pytest

from soulwatch.exceptions import ParseError, QueryError
from soulwatch.promql.parser import parse


@pytest.mark.parametrize(
    ("query", "line", "column", "message"),
    [
        ("", 1, 1, "no expression found in input"),
        ("1 +", 1, 4, "unexpected end of input, expected expression"),
        ("foo bar", 1, 5, 'unexpected identifier "bar", expected end of input or binary operator'),
        ("sum(x) by", 1, 10, 'unexpected end of input in grouping opts, expected "("'),
        ('foo{a="b"', 1, 10, "unexpected end of input inside braces"),
        (
            'foo{a="b" c="d"}',
            1,
            11,
            'unexpected identifier "c" in label matching, expected "," or "}"',
        ),
        ("foo{a 1}", 1, 7, "unexpected character inside braces: '1'"),
        ("foo{a}", 1, 6, 'unexpected "}" in label matching, expected label matching operator'),
        ("foo{a=b}", 1, 7, 'unexpected identifier "b" in label matching, expected string'),
        ("(1", 1, 3, "unclosed left parenthesis"),
        (
            "(1 2)",
            1,
            4,
            'unexpected number "2", expected ")" or binary operator',
        ),
        ("rate(x[5m]", 1, 11, "unclosed left parenthesis"),
        ("rate(x[5m] y)", 1, 12, 'unexpected identifier "y", expected "," or ")"'),
        ("sum(rate(x[5m] y))", 1, 16, 'unexpected identifier "y" in aggregation'),
        ('"\\xZZ"', 1, 1, "illegal character U+005A 'Z' in escape sequence"),
        ("x[5m", 1, 5, "unclosed left bracket"),
        ("x[5m 1m]", 1, 6, 'in subquery or range, expected ":" or "]"'),
        ("x[]", 1, 3, 'unexpected "]" in subquery or range, expected duration'),
        ("x offset", 1, 9, "unexpected end of input in offset, expected duration"),
        ("x @ foo", 1, 5, "in @, expected timestamp"),
        ("1 )", 1, 4, "unexpected right parenthesis ')'"),
        ("x]", 1, 2, "unexpected right bracket ']'"),
        ("x}", 1, 2, "unexpected character: '}'"),
        ("foo{a!b}", 1, 6, "unexpected character after '!' inside braces: 'b'"),
        ('"abc', 1, 1, "unterminated quoted string"),
        ('"a\\qb"', 1, 1, "unknown escape sequence U+0071 'q'"),
        ("foo\n  + bar[5m]", 2, 5, "binary expression must contain only scalar and instant"),
        ("x +\n  rate(y)", 2, 8, 'expected type range vector in call to function "rate"'),
        ("foo offset 5x", 1, 12, 'bad number or duration syntax: "5"'),
        ("x[30m1h]", 1, 3, 'not a valid duration string: "30m1h"'),
        ("x[0s]", 1, 3, "duration must be greater than 0"),
        ("$", 1, 1, "unexpected character: '$'"),
        ('up{é="x"}', 1, 4, "unexpected character inside braces: 'é'"),
        ("up + é", 1, 6, "unexpected character: 'é'"),
        ("rate(x[5m],)", 1, 11, "trailing commas not allowed in function call args"),
        ("sum(x,)", 1, 6, "trailing commas not allowed in function call args"),
        ("sum()", 1, 1, "no arguments for aggregate expression provided"),
        ('"\\8"', 1, 1, "unknown escape sequence U+0038 '8'"),
    ],
)
def test_syntax_errors_are_located(query: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(query)
    err = caught.value
    assert (err.line, err.column) == (line, column), str(err)
    assert message in err.reason
    assert str(err).startswith(f"{line}:{column}: parse error: ")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("rate(x)", 'expected type range vector in call to function "rate", got instant vector'),
        ("abs(x[5m])", 'expected type instant vector in call to function "abs", got range vector'),
        ('clamp(x, "a", 1)', 'expected type scalar in call to function "clamp", got string'),
        ("label_replace(x)", 'expected 5 argument(s) in call to "label_replace", got 1'),
        ("round(x, 1, 2)", 'expected at most 2 argument(s) in call to "round", got 3'),
        ('label_join(x, "a")', 'expected at least 3 argument(s) in call to "label_join", got 2'),
        ("nope(x)", 'unknown function with name "nope"'),
        ("sum(x[5m])", "expected type instant vector in aggregation expression, got range vector"),
        ("topk(x, y)", "expected type scalar in aggregation parameter, got instant vector"),
        ("count_values(1, y)", "expected type string in aggregation parameter, got scalar"),
        ("sum(1, x)", "wrong number of arguments for aggregate expression provided, expected 1"),
        ("topk(x)", "wrong number of arguments for aggregate expression provided, expected 2"),
        ("1 > 2", "comparisons between scalars must use BOOL modifier"),
        ("x + bool y", "bool modifier can only be used on comparison operators"),
        ("x and 1", 'set operator "and" not allowed in binary scalar expression'),
        ("x and on(a) group_left y", 'no grouping allowed for "and" operation'),
        ("x + on(a) group_left(a) y", 'label "a" must not occur in ON and GROUP clause at once'),
        ("1 + on(a) x", "vector matching only allowed between instant vectors"),
        ('-"a"', "unary expression only allowed on expressions of type scalar or instant vector"),
        ("x[5m] + 1", "binary expression must contain only scalar and instant vector types"),
        ("sum(x)[5m]", "ranges only allowed for vector selectors"),
        ("x[5m][1h:]", "subquery is only allowed on instant vector, got matrix"),
        ("sum(x) offset 5m", "offset modifier must be preceded by an instant vector selector"),
        ("x offset 1m offset 2m", "offset may not be set multiple times"),
        ("x @ 1 @ 2", "@ <timestamp> may not be set multiple times"),
        ("x @ Inf", "timestamp out of bounds for @ modifier: +Inf"),
        ("{}", "vector selector must contain at least one non-empty matcher"),
        ('{a=~".*"}', "vector selector must contain at least one non-empty matcher"),
        ('foo{__name__="bar"}', 'metric name must not be set twice: "foo" or "bar"'),
        ('foo{a=~"("}', "error parsing regexp: missing closing ): `(`"),
    ],
)
def test_type_errors_in_prometheus_wording(query: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(query)
    assert message in caught.value.reason


def test_parse_error_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        parse("sum(")


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        # A syntax error wins over type errors, which are checked only after a clean parse.
        ("rate(x) foo", 9, 'unexpected identifier "foo"'),
        # Reading order: the earlier syntax error, not the bad character further on.
        ('sum b (x{a="$"})', 5, 'unexpected identifier "b"'),
        # Errors inside a call's arguments come before its own.
        ("nope(rate(x[5m]), 1 > 2)", 1, 'unknown function with name "nope"'),
        ("nope(x[1m][5m])", 11, "ranges only allowed for vector selectors"),
        # A call's argument count is checked before its arguments' types.
        ('round(x[5m], 1, "a")', 1, 'expected at most 2 argument(s) in call to "round", got 3'),
        # An aggregation's expression is checked before its parameter.
        ('topk("a", x[5m])', 11, "expected type instant vector in aggregation expression"),
    ],
)
def test_which_error_is_reported_first_follows_prometheus(
    query: str, column: int, message: str
) -> None:
    with pytest.raises(ParseError) as caught:
        parse(query)
    assert caught.value.column == column, str(caught.value)
    assert message in caught.value.reason


def test_absurd_nesting_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        parse("(" * 5000 + "1" + ")" * 5000)
    assert parse("(" * 50 + "1" + ")" * 50) is not None
