"""A hand-written PromQL parser: ``parse(query) -> Expr``.

Recursive descent for the primary expressions, precedence climbing for the
binary operators, then the same type checks as Prometheus's parser
(:mod:`soulwatch.promql.typecheck`). Every error is a
:class:`~soulwatch.exceptions.ParseError` carrying the line and column and,
where it can, what was expected there (``unexpected identifier "x" in
aggregation, expected ")"``). When a query has several problems, the one
reported is the one Prometheus reports: tokens are read lazily (a bad
character late in the query does not hide an earlier syntax error), errors
of grammar rules (an unknown function, a range on a non-selector) are kept
while parsing goes on, and types are checked only after a clean parse. Why
hand-written rather than the ``promql-parser`` package: see docs/promql.md.

Prometheus 3 grammar, float samples: numbers (decimal, hex, ``Inf``, ``NaN``,
and durations such as ``1h30m`` as a number of seconds), strings in three
quote styles, selectors with the four matcher types and quoted names,
``offset`` and ``@``, range selectors, subqueries, unary and binary
operators with Prometheus's precedence (``^`` right-associative), ``bool``,
vector matching, aggregations with their modifier before or after, and
function calls checked against :data:`~soulwatch.promql.ast.FUNCTIONS`.
Experimental syntax (duration expressions inside ``[...]``, ``fill``
modifiers) is rejected as a syntax error.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import replace

from soulwatch.exceptions import ParseError
from soulwatch.promql.ast import (
    AGGREGATION_PARAMS,
    AGGREGATIONS,
    COMPARISON_OPS,
    FUNCTIONS,
    SET_OPS,
    AggregateExpr,
    At,
    AtKind,
    BinaryExpr,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorMatching,
    VectorSelector,
    value_type,
)
from soulwatch.promql.lexer import Token, TokenKind, error_at, iter_tokens
from soulwatch.promql.typecheck import ParseFacts, check
from soulwatch.tsdb.model import Matcher, MatchType
from soulwatch.tsdb.regex import RegexError

__all__ = ["parse", "parse_duration"]

# Binding power of each binary operator; higher binds tighter.
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(COMPARISON_OPS, 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_UNARY_PRECEDENCE = 5  # like '*': -a^b is -(a^b), -a*b is (-a)*b
# Keywords that may still name a metric when they start an expression,
# as in Prometheus's `metric_identifier` rule.
#: Functions Prometheus 3 renamed: an unknown-function error names the new name.
RENAMED_FUNCTIONS = {"holt_winters": "double_exponential_smoothing"}

_KEYWORD_METRIC_NAMES = AGGREGATIONS | {"and", "or", "unless", "by", "without", "offset"}
_KEYWORDS = _KEYWORD_METRIC_NAMES | {
    "atan2",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
_DURATION_RE = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?",
)
_DURATION_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_FLOAT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def parse(query: str) -> Expr:
    """Parse and type-check a PromQL expression.

    Raises :class:`~soulwatch.exceptions.ParseError` with the 1-based line and
    column of the problem and, for syntax errors, what was expected. Trees are
    immutable, so recent results are cached: a rule evaluated every interval
    is parsed once.
    """
    return _parse_cached(query)


@functools.lru_cache(maxsize=1024)
def _parse_cached(query: str) -> Expr:
    try:
        return _Parser(query).parse()
    except RecursionError:
        # Thousands of nested parentheses: refuse rather than crash.
        raise ParseError("expression nested too deeply", line=1, column=1) from None


def parse_duration(text: str) -> int:
    """Milliseconds of a Prometheus duration such as ``1h30m`` or ``10s53ms``.

    Units must appear at most once each, from largest (``y``) to smallest
    (``ms``). Raises :class:`ValueError` for anything else.
    """
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    return sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_MS, strict=True) if g)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.stream = iter_tokens(text)
        self.tokens: list[Token] = []
        self.i = 0
        self.facts = ParseFacts()
        # The first error of a grammar rule: parsing goes on, as in Prometheus,
        # but this is what gets reported.
        self.first_error: ParseError | None = None
        # What a missing operand is reported "in": the innermost aggregation
        # (Prometheus names no other construct in these errors).
        self.contexts = [""]

    # -- token helpers -------------------------------------------------------

    def _fill(self, index: int) -> Token:
        while len(self.tokens) <= index:
            if self.tokens and self.tokens[-1].kind is TokenKind.EOF:
                return self.tokens[-1]
            self.tokens.append(next(self.stream))
        return self.tokens[index]

    @property
    def tok(self) -> Token:
        return self._fill(self.i)

    def peek(self, ahead: int = 1) -> Token:
        return self._fill(self.i + ahead)

    def advance(self) -> Token:
        token = self.tok
        if token.kind is not TokenKind.EOF:
            self.i += 1
        return token

    def at_end(self) -> bool:
        return self.tok.kind is TokenKind.EOF

    def is_punct(self, text: str, token: Token | None = None) -> bool:
        token = token or self.tok
        return token.kind is TokenKind.PUNCT and token.text == text

    def keyword(self, token: Token | None = None) -> str | None:
        """The lower-cased keyword a token spells, if it is one."""
        token = token or self.tok
        if token.kind is TokenKind.IDENT and token.text.lower() in _KEYWORDS:
            return token.text.lower()
        return None

    def error(self, message: str, pos: int | None = None) -> ParseError:
        return error_at(self.text, self.tok.pos if pos is None else pos, message)

    def number(self, token: Token) -> float:
        """A NUMBER token's value; a malformed one is reported, as Prometheus does."""
        try:
            return _number(token.text)
        except ValueError:
            self.defer(
                f'error parsing number: strconv.ParseFloat: parsing "{token.text}": invalid syntax',
                token.pos,
            )
            return 0.0

    def defer(self, message: str, pos: int) -> None:
        """Record a grammar-rule error and keep parsing (only the first is reported)."""
        if self.first_error is None:
            self.first_error = error_at(self.text, pos, message)

    def unexpected(self, context: str, expected: str | None = None) -> ParseError:
        token = self.tok
        what = token.describe(self.text)
        if token.kind is TokenKind.IDENT and token.text.lower() in ("inf", "nan"):
            what = f'number "{token.text}"'
        # Inside braces every word is a label name; elsewhere keywords show as <kw>.
        if token.kind is TokenKind.IDENT and context != "in label matching":
            kw = self.keyword(token)
            if kw in AGGREGATIONS:
                what = f"<aggr:{token.text}>"
            elif kw in ("and", "or", "unless", "atan2"):
                what = f"<op:{token.text}>"
            elif kw is not None:
                what = f"<{token.text}>"
        message = f"unexpected {what}"
        if context:
            message += f" {context}"
        if expected:
            message += f", expected {expected}"
        return self.error(message)

    def expect_punct(self, text: str, context: str) -> Token:
        if not self.is_punct(text):
            raise self.unexpected(context, f'"{text}"')
        return self.advance()

    # -- expressions ---------------------------------------------------------

    def parse(self) -> Expr:
        try:
            if self.tok.kind is TokenKind.EOF:
                raise self.error("no expression found in input")
            expr = self.expression(0)
            if not self.at_end():
                raise self.unexpected("", "end of input or binary operator")
        except ParseError as syntax_error:
            raise self.first_error or syntax_error from None
        if self.first_error is not None:
            raise self.first_error

        def report(message: str, pos: int) -> None:
            raise error_at(self.text, pos, message)

        check(expr, self.facts, report)
        return _normalize(expr)

    def starts_expression(self) -> bool:
        """Whether the current token can begin an expression."""
        token = self.tok
        if token.kind in (TokenKind.NUMBER, TokenKind.DURATION, TokenKind.STRING):
            return True
        if token.kind is TokenKind.OPERATOR:
            return token.text in ("+", "-")
        if token.kind is TokenKind.PUNCT:
            return token.text in ("(", "{")
        if token.kind is TokenKind.IDENT:
            kw = self.keyword(token)
            return kw is None or kw in _KEYWORD_METRIC_NAMES
        return False

    def binary_op(self) -> str | None:
        """The binary operator at the current token, if any."""
        token = self.tok
        if token.kind is TokenKind.OPERATOR and token.text in _PRECEDENCE:
            return token.text
        kw = self.keyword(token)
        if kw in ("and", "or", "unless", "atan2"):
            return kw
        return None

    def expression(self, min_prec: int) -> Expr:
        lhs = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _PRECEDENCE[op] < min_prec:
                return lhs
            op_pos = self.advance().pos
            return_bool, matching = self.binary_modifiers()
            # '^' is right-associative: its right side may hold another '^'.
            next_min = _PRECEDENCE[op] + (0 if op == "^" else 1)
            rhs = self.expression(next_min)
            node = BinaryExpr(op, lhs, rhs, return_bool, matching, _start(lhs))
            self.facts.operator_pos[id(node)] = op_pos
            lhs = node

    def unary(self) -> Expr:
        token = self.tok
        if token.kind is TokenKind.OPERATOR and token.text in "+-":
            self.advance()
            operand = self.expression(_UNARY_PRECEDENCE + 1)
            # Prometheus folds a sign into a number literal.
            if isinstance(operand, NumberLiteral):
                value = -operand.value if token.text == "-" else operand.value
                return NumberLiteral(value, token.pos)
            return UnaryExpr(token.text, operand, token.pos)
        return self.postfix(self.primary())

    def binary_modifiers(self) -> tuple[bool, VectorMatching | None]:
        return_bool = False
        if self.keyword() == "bool":
            self.advance()
            return_bool = True
        kw = self.keyword()
        if kw not in ("on", "ignoring"):
            return return_bool, None
        self.advance()
        labels = self.label_list("in grouping opts")
        cardinality = Cardinality.ONE_TO_ONE
        include: tuple[str, ...] = ()
        group = self.keyword()
        if group in ("group_left", "group_right"):
            self.advance()
            if self.is_punct("("):
                include = self.label_list("in grouping opts")
            elif not self.starts_expression():
                raise self.unexpected("in grouping opts", '"("')
            cardinality = (
                Cardinality.MANY_TO_ONE if group == "group_left" else Cardinality.ONE_TO_MANY
            )
        return return_bool, VectorMatching(cardinality, kw == "on", labels, include)

    def postfix(self, expr: Expr) -> Expr:
        """Range/subquery brackets, ``offset`` and ``@`` after a primary expression."""
        while True:
            if self.is_punct("["):
                expr = self.range_or_subquery(expr)
            elif self.keyword() == "offset":
                expr = self.offset(expr)
            elif self.is_punct("@"):
                expr = self.at(expr)
            else:
                return expr

    def range_or_subquery(self, expr: Expr) -> Expr:
        open_pos = self.advance().pos
        range_ms = self.duration("in subquery or range", allow_zero=False)
        if self.is_punct("]"):
            self.advance()
            if not isinstance(expr, VectorSelector):
                self.defer("ranges only allowed for vector selectors", open_pos)
                return expr
            if expr.offset_ms or expr.at is not None:
                self.defer("no offset or @ modifiers allowed before range", open_pos)
                return expr
            return MatrixSelector(expr, range_ms, expr.pos)
        if not self.is_punct(":"):
            raise self.unexpected("in subquery or range", '":" or "]"')
        self.advance()
        step_ms = 0
        if not self.is_punct("]"):
            if self.tok.kind not in (TokenKind.DURATION, TokenKind.NUMBER):
                raise self.unexpected("in subquery selector", 'duration or "]"')
            step_ms = self.duration("in subquery selector", allow_zero=False)
        self.expect_punct("]", "in subquery selector")
        return SubqueryExpr(expr, range_ms, step_ms, pos=_start(expr))

    def duration(self, context: str, *, allow_zero: bool) -> int:
        token = self.tok
        if token.kind is TokenKind.DURATION:
            self.advance()
            return self.duration_token(token)
        if token.kind is TokenKind.NUMBER:
            self.advance()
            seconds = self.number(token)
            if not math.isfinite(seconds) or seconds < 0:
                self.defer(f'invalid duration "{token.text}"', token.pos)
                return 1
            ms = round(seconds * 1000)
        else:
            raise self.unexpected(context, "duration")
        if ms == 0 and not allow_zero:
            self.defer("duration must be greater than 0", token.pos)
            return 1
        return ms

    def duration_token(self, token: Token) -> int:
        """A DURATION token's milliseconds; zero is an error wherever it is written."""
        try:
            ms = parse_duration(token.text)
        except ValueError as exc:
            self.defer(str(exc), token.pos)
            return 1
        if ms == 0:
            self.defer("duration must be greater than 0", token.pos)
            return 1
        return ms

    def offset(self, expr: Expr) -> Expr:
        self.advance()
        sign = 1
        if self.tok.kind is TokenKind.OPERATOR and self.tok.text in "+-":
            sign = -1 if self.advance().text == "-" else 1
        offset_ms = sign * self.duration("in offset", allow_zero=True)
        target = _modifiable(expr)
        if target is None:
            self.defer(
                "offset modifier must be preceded by an instant vector selector "
                "or range vector selector or a subquery",
                _start(expr),
            )
            return expr
        if target.offset_ms:
            self.defer("offset may not be set multiple times", _start(expr))
            return expr
        return _with_modifier(expr, replace(target, offset_ms=offset_ms))

    def at(self, expr: Expr) -> Expr:
        self.advance()
        token = self.tok
        word = token.text.lower() if token.kind is TokenKind.IDENT else ""
        if word in ("start", "end"):
            self.advance()
            for punct in "()":
                if not self.is_punct(punct):
                    raise self.unexpected("in @", "timestamp")
                self.advance()
            at = At(AtKind.START if word == "start" else AtKind.END)
        else:
            sign = 1.0
            if token.kind is TokenKind.OPERATOR and token.text in "+-":
                sign = -1.0 if self.advance().text == "-" else 1.0
            token = self.tok
            if token.kind is TokenKind.NUMBER:
                seconds = sign * self.number(token)
            elif token.kind is TokenKind.DURATION:
                # Prometheus 3 reads "@ 100s" / "@ 1m40s" as seconds since the epoch.
                try:
                    seconds = sign * parse_duration(token.text) / 1000
                except ValueError as exc:
                    self.defer(str(exc), token.pos)
                    seconds = 0.0
            elif token.kind is TokenKind.IDENT and token.text.lower() in ("inf", "nan"):
                seconds = sign * (math.inf if token.text.lower() == "inf" else math.nan)
            else:
                raise self.unexpected("in @", "timestamp")
            self.advance()
            if not math.isfinite(seconds) or abs(seconds) * 1000 > 2**63 - 1:
                shown = f"{seconds:+f}".replace("inf", "Inf").replace("nan", "NaN")
                self.defer(f"timestamp out of bounds for @ modifier: {shown}", token.pos)
                seconds = 0.0
            at = At(AtKind.TIMESTAMP, round(seconds * 1000))
        target = _modifiable(expr)
        if target is None:
            self.defer(
                "@ modifier must be preceded by an instant vector selector "
                "or range vector selector or a subquery",
                _start(expr),
            )
            return expr
        if target.at is not None:
            self.defer("@ <timestamp> may not be set multiple times", _start(expr))
            return expr
        return _with_modifier(expr, replace(target, at=at))

    # -- primary expressions -------------------------------------------------

    def primary(self) -> Expr:
        token = self.tok
        if token.kind is TokenKind.NUMBER:
            self.advance()
            return NumberLiteral(self.number(token), token.pos)
        if token.kind is TokenKind.DURATION:
            self.advance()
            return NumberLiteral(self.duration_token(token) / 1000, token.pos)
        if token.kind is TokenKind.STRING:
            self.advance()
            return StringLiteral(token.text, token.pos)
        if self.is_punct("("):
            self.advance()
            inner = self.expression(0)
            if not self.is_punct(")"):
                raise self.unexpected(self.contexts[-1], '")" or binary operator')
            self.advance()
            return ParenExpr(inner, token.pos)
        if self.is_punct("{"):
            return self.selector(None, token.pos)
        if token.kind is TokenKind.IDENT:
            return self.identifier_expr()
        raise self.unexpected(self.contexts[-1], "expression")

    def identifier_expr(self) -> Expr:
        token = self.tok
        name = token.text
        lower = name.lower()
        kw = self.keyword(token)
        if kw is not None and kw not in _KEYWORD_METRIC_NAMES:
            raise self.unexpected(self.contexts[-1], "expression")
        nxt = self.peek()
        if lower in AGGREGATIONS and (
            self.is_punct("(", nxt) or self.keyword(nxt) in ("by", "without")
        ):
            return self.aggregation()
        if lower in ("inf", "nan"):
            self.advance()
            return NumberLiteral(math.inf if lower == "inf" else math.nan, token.pos)
        if kw is None and ":" not in name and self.is_punct("(", nxt):
            return self.call()
        self.advance()
        return self.selector(name, token.pos)

    def call_args(self, context: str) -> list[Expr]:
        """``( expr, expr, ... )`` after a function or aggregation name."""
        self.advance()  # "("
        args: list[Expr] = []
        # Prometheus names only aggregations in these errors, also for what is
        # nested inside them (calls and parentheses have no name of their own).
        pushed = bool(context)
        if pushed:
            self.contexts.append(context)
        context = self.contexts[-1]
        while not self.is_punct(")"):
            if not self.starts_expression():
                raise self.unexpected(context, "expression")
            args.append(self.expression(0))
            if self.is_punct(","):
                comma = self.advance()
                if not self.starts_expression():
                    # Prometheus reduces "args ," first, then fails on what follows.
                    self.defer("trailing commas not allowed in function call args", comma.pos)
            elif not self.is_punct(")"):
                raise self.unexpected(context, '"," or ")"')
        if pushed:
            self.contexts.pop()
        self.advance()
        return args

    def call(self) -> Expr:
        name_token = self.advance()
        args = self.call_args("")
        # Checked after the arguments, as Prometheus reports errors inside them first.
        if name_token.text not in FUNCTIONS:
            message = f'unknown function with name "{name_token.text}"'
            renamed = RENAMED_FUNCTIONS.get(name_token.text)
            if renamed is not None:
                message += f" (renamed {renamed} in Prometheus 3)"
            self.defer(message, name_token.pos)
        return Call(name_token.text, tuple(args), name_token.pos)

    def aggregation(self) -> Expr:
        op_token = self.advance()
        op = op_token.text.lower()
        grouping: tuple[str, ...] = ()
        without = False
        modifier_seen = False
        if self.keyword() in ("by", "without"):
            without = self.advance().text.lower() == "without"
            grouping = self.label_list("in grouping opts")
            modifier_seen = True
        if not self.is_punct("("):
            raise self.unexpected("in aggregation", '"("')
        args = self.call_args("in aggregation")
        if self.keyword() in ("by", "without"):
            if modifier_seen:
                raise self.unexpected("in aggregation", "end of aggregation")
            without = self.advance().text.lower() == "without"
            grouping = self.label_list("in grouping opts")
        wanted_args = 2 if op in AGGREGATION_PARAMS else 1
        if not args:
            self.defer("no arguments for aggregate expression provided", op_token.pos)
            args = [NumberLiteral(0.0, op_token.pos)]
        elif len(args) != wanted_args:
            self.defer(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted_args}, got {len(args)}",
                op_token.pos,
            )
        param = args[0] if wanted_args == 2 else None
        return AggregateExpr(op, args[-1], param, grouping, without, op_token.pos)

    def label_list(self, context: str) -> tuple[str, ...]:
        """``( name, name, ... )`` for by/without/on/ignoring/group_x; names may be keywords."""
        self.expect_punct("(", context)
        names: list[str] = []
        while not self.is_punct(")"):
            names.append(self.label_name(context))
            if self.is_punct(","):
                self.advance()
            elif not self.is_punct(")"):
                raise self.unexpected(context, '"," or ")"')
        self.advance()
        return tuple(names)

    def label_name(self, context: str) -> str:
        token = self.tok
        if token.kind is TokenKind.STRING:  # Prometheus 3 allows quoted (UTF-8) names
            self.advance()
            return token.text
        if token.kind is TokenKind.IDENT and _LABEL_NAME.fullmatch(token.text):
            self.advance()
            return token.text
        raise self.unexpected(context, "label")

    def selector(self, name: str | None, pos: int) -> VectorSelector:
        matchers: list[Matcher] = []
        if name is not None:
            matchers.append(Matcher(MatchType.EQUAL, "__name__", name))
            self.facts.named_selectors.add(pos)
        if self.is_punct("{"):
            self.advance()
            while not self.is_punct("}"):
                matchers.append(self.matcher())
                if self.is_punct(","):
                    self.advance()
                elif not self.is_punct("}"):
                    raise self.unexpected("in label matching", '"," or "}"')
            self.advance()
        if name is None:
            names = [
                m.value for m in matchers if m.name == "__name__" and m.type is MatchType.EQUAL
            ]
            name = names[0] if len(names) == 1 else None
        return VectorSelector(name, tuple(matchers), pos=pos)

    def matcher(self) -> Matcher:
        token = self.tok
        if token.kind is TokenKind.STRING and (
            self.is_punct(",", self.peek()) or self.is_punct("}", self.peek())
        ):
            # {"metric.name"}: a quoted metric name on its own.
            self.advance()
            return Matcher(MatchType.EQUAL, "__name__", token.text)
        if self.tok.kind not in (TokenKind.IDENT, TokenKind.STRING):
            raise self.unexpected("in label matching", 'identifier or "}"')
        name = self.label_name("in label matching")
        op_token = self.tok
        types = {t.value: t for t in MatchType}
        if op_token.kind is not TokenKind.OPERATOR or op_token.text not in types:
            raise self.unexpected("in label matching", "label matching operator")
        self.advance()
        value_token = self.tok
        if value_token.kind is not TokenKind.STRING:
            raise self.unexpected("in label matching", "string")
        self.advance()
        match_type = types[op_token.text]
        value = value_token.text
        try:
            return Matcher(match_type, name, value)
        except RegexError as exc:
            self.defer(str(exc), token.pos)
            return Matcher(MatchType.EQUAL, name, value)


def _normalize(expr: Expr) -> Expr:
    """Settle vector matching as Prometheus does once types are known.

    Two vectors always get a :class:`VectorMatching` (one-to-one by default,
    many-to-many for set operators); a scalar side gets none.
    """
    if isinstance(expr, BinaryExpr):
        lhs, rhs = _normalize(expr.lhs), _normalize(expr.rhs)
        vectors = value_type(lhs) is ValueType.VECTOR and value_type(rhs) is ValueType.VECTOR
        matching = expr.matching
        if not vectors:
            matching = None
        else:
            matching = matching or VectorMatching()
            if expr.op in SET_OPS and matching.cardinality is Cardinality.ONE_TO_ONE:
                matching = replace(matching, cardinality=Cardinality.MANY_TO_MANY)
        return replace(expr, lhs=lhs, rhs=rhs, matching=matching)
    if isinstance(expr, ParenExpr | UnaryExpr):
        return replace(expr, expr=_normalize(expr.expr))
    if isinstance(expr, SubqueryExpr):
        return replace(expr, expr=_normalize(expr.expr))
    if isinstance(expr, AggregateExpr):
        param = None if expr.param is None else _normalize(expr.param)
        return replace(expr, expr=_normalize(expr.expr), param=param)
    if isinstance(expr, Call):
        return replace(expr, args=tuple(_normalize(a) for a in expr.args))
    return expr


def _number(text: str) -> float:
    """The value of a NUMBER token; :class:`ValueError` if it is malformed (``1e-``)."""
    if text[:2].lower() == "0x":
        return float(int(text, 16))
    if not _FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text)


def _start(expr: Expr) -> int:
    return int(getattr(expr, "pos", 0))


def _modifiable(expr: Expr) -> VectorSelector | SubqueryExpr | None:
    """The node that carries ``offset``/``@`` for ``expr``, if it can have them."""
    if isinstance(expr, VectorSelector | SubqueryExpr):
        return expr
    if isinstance(expr, MatrixSelector):
        return expr.selector
    return None


def _with_modifier(expr: Expr, target: VectorSelector | SubqueryExpr) -> Expr:
    if isinstance(expr, MatrixSelector):
        assert isinstance(target, VectorSelector)
        return replace(expr, selector=target)
    return target
