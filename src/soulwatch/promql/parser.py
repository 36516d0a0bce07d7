"""A hand-written PromQL parser: ``parse(query) -> Expr``.

Recursive descent for the primary expressions, precedence climbing for the
binary operators, and the same type checks as Prometheus's parser. Every
error is a :class:`~soulwatch.exceptions.ParseError` carrying the line and
column and, where it can, what was expected there (``unexpected identifier
"x" in aggregation, expected ")"``). Why hand-written rather than the
``promql-parser`` package: see docs/promql.md.

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

import math
import re
from dataclasses import replace

from soulwatch.exceptions import ParseError
from soulwatch.promql import re2
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
from soulwatch.promql.lexer import Token, TokenKind, error_at, tokenize
from soulwatch.tsdb.model import Matcher, MatchType

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
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DOC_TYPES = {
    ValueType.SCALAR: "scalar",
    ValueType.STRING: "string",
    ValueType.VECTOR: "instant vector",
    ValueType.MATRIX: "range vector",
}


def parse(query: str) -> Expr:
    """Parse and type-check a PromQL expression.

    Raises :class:`~soulwatch.exceptions.ParseError` with the 1-based line and
    column of the problem and, for syntax errors, what was expected.
    """
    return _Parser(query).parse()


def parse_duration(text: str) -> int:
    """Milliseconds of a Prometheus duration such as ``1h30m`` or ``10s53ms``.

    Units must appear at most once each, from largest (``y``) to smallest
    (``ms``). Raises :class:`ValueError` for anything else.
    """
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    return sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_MS, strict=True) if g)


def _doc(vtype: ValueType) -> str:
    return _DOC_TYPES[vtype]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not TokenKind.EOF:
            self.i += 1
        return token

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

    def unexpected(self, context: str, expected: str | None = None) -> ParseError:
        token = self.tok
        what = token.describe()
        if token.kind is TokenKind.IDENT and self.keyword(token):
            what = f"<{token.text.lower()}>"
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
        if self.tok.kind is TokenKind.EOF:
            raise self.error("no expression found in input")
        expr = self.expression(0)
        if self.tokens[self.i].kind is not TokenKind.EOF:
            if self.is_punct(")"):
                raise self.error('unexpected right parenthesis ")"')
            raise self.unexpected("", self._binary_expected())
        return expr

    @staticmethod
    def _binary_expected() -> str:
        return "end of input or binary operator"

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
            modifiers = self.binary_modifiers(op)
            # '^' is right-associative: its right side may hold another '^'.
            next_min = _PRECEDENCE[op] + (0 if op == "^" else 1)
            rhs = self.expression(next_min)
            lhs = self.check_binary(op, lhs, rhs, modifiers, op_pos)

    def unary(self) -> Expr:
        token = self.tok
        if token.kind is TokenKind.OPERATOR and token.text in "+-":
            self.advance()
            operand = self.expression(_UNARY_PRECEDENCE + 1)
            operand_type = value_type(operand)
            if operand_type not in (ValueType.SCALAR, ValueType.VECTOR):
                raise self.error(
                    "unary expression only allowed on expressions of type scalar or "
                    f'instant vector, got "{_doc(operand_type)}"',
                    token.pos,
                )
            # Prometheus folds a sign into a number literal.
            if isinstance(operand, NumberLiteral):
                value = -operand.value if token.text == "-" else operand.value
                return NumberLiteral(value, token.pos)
            return UnaryExpr(token.text, operand, token.pos)
        return self.postfix(self.primary())

    def binary_modifiers(self, op: str) -> tuple[bool, VectorMatching | None]:
        return_bool = False
        if self.keyword() == "bool":
            if op not in COMPARISON_OPS:
                raise self.error("bool modifier can only be used on comparison operators")
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
            group_pos = self.advance().pos
            if op in SET_OPS:
                raise self.error(f'no grouping allowed for "{op}" operation', group_pos)
            if self.is_punct("("):
                include = self.label_list("in grouping opts")
            cardinality = (
                Cardinality.MANY_TO_ONE if group == "group_left" else Cardinality.ONE_TO_MANY
            )
            if kw == "on":
                for name in include:
                    if name in labels:
                        raise self.error(
                            f'label "{name}" must not occur in ON and GROUP clause at once',
                            group_pos,
                        )
        return return_bool, VectorMatching(cardinality, kw == "on", labels, include)

    def check_binary(
        self,
        op: str,
        lhs: Expr,
        rhs: Expr,
        modifiers: tuple[bool, VectorMatching | None],
        pos: int,
    ) -> Expr:
        return_bool, matching = modifiers
        lt, rt = value_type(lhs), value_type(rhs)
        for side, operand in ((lt, lhs), (rt, rhs)):
            if side not in (ValueType.SCALAR, ValueType.VECTOR):
                raise self.error(
                    "binary expression must contain only scalar and instant vector types",
                    _start(operand),
                )
        both_vectors = lt is ValueType.VECTOR and rt is ValueType.VECTOR
        both_scalars = lt is ValueType.SCALAR and rt is ValueType.SCALAR
        if op in COMPARISON_OPS and not return_bool and both_scalars:
            raise self.error("comparisons between scalars must use BOOL modifier", pos)
        if op in SET_OPS and not both_vectors:
            raise self.error(f'set operator "{op}" not allowed in binary scalar expression', pos)
        if matching is not None and not both_vectors:
            raise self.error("vector matching only allowed between instant vectors", pos)
        if both_vectors:
            matching = matching or VectorMatching()
            if op in SET_OPS:
                matching = replace(matching, cardinality=Cardinality.MANY_TO_MANY)
        # Errors point at the operator (as Prometheus's do); the node starts with its lhs.
        return BinaryExpr(op, lhs, rhs, return_bool, matching, _start(lhs))

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
        range_ms = self.duration("in subquery or range selector", allow_zero=False)
        if self.is_punct("]"):
            self.advance()
            if not isinstance(expr, VectorSelector):
                raise self.error("ranges only allowed for vector selectors", open_pos)
            if expr.offset_ms or expr.at is not None:
                raise self.error("no offset or @ modifiers allowed before range", open_pos)
            return MatrixSelector(expr, range_ms, expr.pos)
        if not self.is_punct(":"):
            raise self.unexpected("in subquery or range selector", '":" or "]"')
        self.advance()
        step_ms = 0
        if not self.is_punct("]"):
            step_ms = self.duration("in subquery", allow_zero=False)
        self.expect_punct("]", "in subquery")
        inner_type = value_type(expr)
        if inner_type is not ValueType.VECTOR:
            raise self.error(
                f"subquery is only allowed on instant vector, got {inner_type.value}", open_pos
            )
        return SubqueryExpr(expr, range_ms, step_ms, pos=_start(expr))

    def duration(self, context: str, *, allow_zero: bool) -> int:
        token = self.tok
        if token.kind is TokenKind.DURATION:
            self.advance()
            try:
                ms = parse_duration(token.text)
            except ValueError as exc:
                raise self.error(str(exc), token.pos) from None
        elif token.kind is TokenKind.NUMBER:
            self.advance()
            seconds = _number(token.text)
            if not math.isfinite(seconds) or seconds < 0:
                raise self.error(f'invalid duration "{token.text}"', token.pos)
            ms = round(seconds * 1000)
        else:
            raise self.unexpected(context, "duration")
        if ms == 0 and not allow_zero:
            raise self.error("duration must be greater than 0", token.pos)
        return ms

    def offset(self, expr: Expr) -> Expr:
        kw_pos = self.advance().pos
        sign = 1
        if self.tok.kind is TokenKind.OPERATOR and self.tok.text in "+-":
            sign = -1 if self.advance().text == "-" else 1
        offset_ms = sign * self.duration("in offset", allow_zero=True)
        target = _modifiable(expr)
        if target is None:
            raise self.error(
                "offset modifier must be preceded by an instant vector selector "
                "or range vector selector or a subquery",
                kw_pos,
            )
        if target.offset_ms:
            raise self.error("offset may not be set multiple times", kw_pos)
        return _with_modifier(expr, replace(target, offset_ms=offset_ms))

    def at(self, expr: Expr) -> Expr:
        at_pos = self.advance().pos
        token = self.tok
        word = token.text.lower() if token.kind is TokenKind.IDENT else ""
        if word in ("start", "end"):
            self.advance()
            self.expect_punct("(", "in @ modifier")
            self.expect_punct(")", "in @ modifier")
            at = At(AtKind.START if word == "start" else AtKind.END)
        else:
            sign = 1.0
            if token.kind is TokenKind.OPERATOR and token.text in "+-":
                sign = -1.0 if self.advance().text == "-" else 1.0
            token = self.tok
            if token.kind is TokenKind.NUMBER:
                seconds = sign * _number(token.text)
            elif token.kind is TokenKind.IDENT and token.text.lower() in ("inf", "nan"):
                seconds = sign * (math.inf if token.text.lower() == "inf" else math.nan)
            else:
                raise self.unexpected("in @", 'number or "start()" or "end()"')
            self.advance()
            if not math.isfinite(seconds) or abs(seconds) * 1000 > 2**63 - 1:
                shown = f"{seconds:+f}".replace("inf", "Inf").replace("nan", "NaN")
                raise self.error(f"timestamp out of bounds for @ modifier: {shown}", token.pos)
            at = At(AtKind.TIMESTAMP, round(seconds * 1000))
        target = _modifiable(expr)
        if target is None:
            raise self.error(
                "@ modifier must be preceded by an instant vector selector "
                "or range vector selector or a subquery",
                at_pos,
            )
        if target.at is not None:
            raise self.error("@ <timestamp> may not be set multiple times", at_pos)
        return _with_modifier(expr, replace(target, at=at))

    # -- primary expressions -------------------------------------------------

    def primary(self) -> Expr:
        token = self.tok
        if token.kind is TokenKind.NUMBER:
            self.advance()
            return NumberLiteral(_number(token.text), token.pos)
        if token.kind is TokenKind.DURATION:
            self.advance()
            try:
                return NumberLiteral(parse_duration(token.text) / 1000, token.pos)
            except ValueError as exc:
                raise self.error(str(exc), token.pos) from None
        if token.kind is TokenKind.STRING:
            self.advance()
            return StringLiteral(token.text, token.pos)
        if self.is_punct("("):
            self.advance()
            inner = self.expression(0)
            if not self.is_punct(")"):
                raise self.unexpected("in paren expression", '")" or binary operator')
            self.advance()
            return ParenExpr(inner, token.pos)
        if self.is_punct("{"):
            return self.selector(None, token.pos)
        if token.kind is TokenKind.IDENT:
            return self.identifier_expr()
        raise self.unexpected("", "expression")

    def identifier_expr(self) -> Expr:
        token = self.tok
        name = token.text
        lower = name.lower()
        nxt = self.peek()
        if lower in AGGREGATIONS and (
            self.is_punct("(", nxt) or self.keyword(nxt) in ("by", "without")
        ):
            return self.aggregation()
        if lower in ("inf", "nan"):
            self.advance()
            return NumberLiteral(math.inf if lower == "inf" else math.nan, token.pos)
        if self.is_punct("(", nxt):
            return self.call()
        kw = self.keyword(token)
        if kw is not None and kw not in _KEYWORD_METRIC_NAMES:
            raise self.unexpected("", "expression")
        self.advance()
        return self.selector(name, token.pos)

    def call(self) -> Expr:
        name_token = self.advance()
        name = name_token.text
        self.advance()  # "("
        args: list[Expr] = []
        while not self.is_punct(")"):
            args.append(self.expression(0))
            if self.is_punct(","):
                self.advance()
                if self.is_punct(")"):
                    raise self.error("trailing commas not allowed in function call args")
            elif not self.is_punct(")"):
                raise self.unexpected("in function call argument list", '"," or ")"')
        self.advance()
        # Checked after the arguments, as Prometheus reports errors inside them first.
        signature = FUNCTIONS.get(name)
        if signature is None:
            raise self.error(f'unknown function with name "{name}"', name_token.pos)
        declared = len(signature.arg_types)
        if signature.variadic == 0:
            if len(args) != declared:
                raise self.error(
                    f'expected {declared} argument(s) in call to "{name}", got {len(args)}',
                    name_token.pos,
                )
        else:
            least = declared - 1
            if len(args) < least:
                raise self.error(
                    f'expected at least {least} argument(s) in call to "{name}", got {len(args)}',
                    name_token.pos,
                )
            most = least + signature.variadic
            if signature.variadic > 0 and len(args) > most:
                raise self.error(
                    f'expected at most {most} argument(s) in call to "{name}", got {len(args)}',
                    name_token.pos,
                )
        for index, arg in enumerate(args):
            wanted = signature.arg_types[min(index, declared - 1)]
            got = value_type(arg)
            if got is not wanted:
                raise self.error(
                    f'expected type {_doc(wanted)} in call to function "{name}", got {_doc(got)}',
                    _start(arg),
                )
        return Call(name, tuple(args), name_token.pos)

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
        self.advance()
        args: list[Expr] = []
        if self.is_punct(")"):
            raise self.error("no arguments for aggregate expression provided", op_token.pos)
        while not self.is_punct(")"):
            args.append(self.expression(0))
            if self.is_punct(","):
                self.advance()
                if self.is_punct(")"):
                    raise self.error("trailing commas not allowed in function call args")
            elif not self.is_punct(")"):
                raise self.unexpected("in aggregation", '"," or ")"')
        self.advance()
        if self.keyword() in ("by", "without"):
            if modifier_seen:
                raise self.unexpected("in aggregation", "end of aggregation")
            without = self.advance().text.lower() == "without"
            grouping = self.label_list("in grouping opts")
        wanted_args = 2 if op in AGGREGATION_PARAMS else 1
        if len(args) != wanted_args:
            raise self.error(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted_args}, got {len(args)}",
                op_token.pos,
            )
        param = args[0] if wanted_args == 2 else None
        expr = args[-1]
        if param is not None:
            wanted = AGGREGATION_PARAMS[op]
            got = value_type(param)
            if got is not wanted:
                raise self.error(
                    f"expected type {_doc(wanted)} in aggregation parameter, got {_doc(got)}",
                    _start(param),
                )
        got = value_type(expr)
        if got is not ValueType.VECTOR:
            raise self.error(
                f"expected type instant vector in aggregation expression, got {_doc(got)}",
                _start(expr),
            )
        return AggregateExpr(op, expr, param, grouping, without, op_token.pos)

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
        if self.is_punct("{"):
            self.advance()
            while not self.is_punct("}"):
                matchers.append(self.matcher(name is not None))
                if self.is_punct(","):
                    self.advance()
                elif not self.is_punct("}"):
                    raise self.unexpected("in label matching", '"," or "}"')
            self.advance()
        names = [m.value for m in matchers if m.name == "__name__" and m.type is MatchType.EQUAL]
        if len(names) > 1 and name is not None:
            raise self.error(
                f'metric name must not be set twice: "{names[0]}" or "{names[1]}"', pos
            )
        if all(m.matches("") for m in matchers):
            raise self.error("vector selector must contain at least one non-empty matcher", pos)
        if name is None and len(names) == 1:
            name = names[0]
        return VectorSelector(name, tuple(matchers), pos=pos)

    def matcher(self, has_name: bool) -> Matcher:
        token = self.tok
        if token.kind is TokenKind.STRING and (
            self.is_punct(",", self.peek()) or self.is_punct("}", self.peek())
        ):
            # {"metric.name"}: a quoted metric name on its own.
            self.advance()
            if has_name:
                raise self.error(f'metric name must not be set twice: "{token.text}"', token.pos)
            return Matcher(MatchType.EQUAL, "__name__", token.text)
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
        if match_type in (MatchType.REGEX, MatchType.NOT_REGEX):
            value = re2.translate(value)
        try:
            return Matcher(match_type, name, value)
        except re.error as exc:
            raise self.error(
                f"invalid regular expression {value_token.text!r}: {exc}", value_token.pos
            ) from None


def _number(text: str) -> float:
    if text[:2].lower() == "0x":
        return float(int(text, 16))
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
