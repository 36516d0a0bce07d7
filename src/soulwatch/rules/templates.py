"""The Go-template subset Prometheus rule labels and annotations use.

Supported: text with ``{{ }}`` actions (and ``{{-``/``-}}`` trimming,
``{{/* comments */}}``); variables ``$labels``, ``$value``,
``$externalLabels``, ``$externalURL`` and ``$`` / ``.`` (with ``.Labels``,
``.Value``, ``.ExternalLabels``); field access (``$labels.instance``);
pipelines (``{{ $value | humanize }}``); ``$x := ...``; ``if`` / ``else if`` /
``else`` / ``end``; literals; functions ``humanize``, ``humanize1024``,
``humanizeDuration``, ``humanizePercentage``, ``humanizeTimestamp``,
``printf``, ``toUpper``, ``toLower``, ``title``, ``eq ne lt le gt ge``,
``and or not``, ``len``, ``index``. Missing label keys render as ``""`` (as
Prometheus sets ``missingkey=zero``).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from soulwatch.rules.gofmt import format_g, format_value, sprintf


class TemplateError(ValueError):
    """A template that does not parse or fails to run."""


_ACTION_RE = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*") |
      (?P<raw>`[^`]*`) |
      (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)) |
      (?P<assign>:=) |
      (?P<var>\$[A-Za-z0-9_]*) |
      (?P<field>\.[A-Za-z_][A-Za-z0-9_]*) |
      (?P<dot>\.) |
      (?P<ident>[A-Za-z_][A-Za-z0-9_]*) |
      (?P<punct>[|(),])
    )""",
    re.X,
)


# --- the tree ---------------------------------------------------------------


@dataclass
class _Operand:
    kind: str  # "str" | "num" | "bool" | "var" | "dot" | "func" | "pipe"
    value: Any
    fields: tuple[str, ...] = ()


@dataclass
class _Command:
    operands: list[_Operand]


@dataclass
class _Pipeline:
    commands: list[_Command]
    declare: str | None = None


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipeline


@dataclass
class _If:
    branches: list[tuple[_Pipeline, list[_Node]]]
    otherwise: list[_Node] = field(default_factory=list)


_Node = _Text | _Action | _If


@dataclass(frozen=True)
class Template:
    """A parsed template; :meth:`render` runs it."""

    source: str
    nodes: tuple[_Node, ...]
    #: The whole output when the template holds no action (a fixed label value).
    text: str | None = None

    def render(self, data: TemplateData) -> str:
        """Expand with ``data``; raises :class:`TemplateError` if a function fails."""
        if self.text is not None:
            return self.text
        out: list[str] = []
        scope: dict[str, object] = {
            "$": data.root(),
            "$labels": dict(data.labels),
            "$value": data.value,
            "$externalLabels": dict(data.external_labels),
            "$externalURL": data.external_url,
        }
        _run(list(self.nodes), scope, out)
        return "".join(out)


@dataclass(frozen=True)
class TemplateData:
    """What a rule template sees: the alert's labels, its value, the external labels."""

    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""

    def root(self) -> dict[str, object]:
        """The ``.`` of the template."""
        return {
            "Labels": dict(self.labels),
            "Value": self.value,
            "ExternalLabels": dict(self.external_labels),
            "ExternalURL": self.external_url,
        }


@lru_cache(maxsize=4096)
def parse_template(source: str) -> Template:
    """Parse ``source``; raises :class:`TemplateError` naming the problem."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    pieces: list[tuple[str, str]] = []
    for match in _ACTION_RE.finditer(source):
        text = source[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        pieces.append(("text", text))
        pieces.append(("action", match.group(2)))
        pos = match.end()
        if match.group(3):
            rest = source[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = source[pos:]
    if "{{" in tail:
        raise TemplateError(f"unclosed action in {source!r}")
    pieces.append(("text", tail))
    del tokens
    nodes, end = _parse_nodes(pieces, 0, top=True)
    if end != len(pieces):
        raise TemplateError(f"unexpected {{{{{pieces[end][1].strip()}}}}}")
    texts = [node.text for node in nodes if isinstance(node, _Text)]
    fixed = "".join(texts) if len(texts) == len(nodes) else None
    return Template(source, tuple(nodes), fixed)


def expand(source: str, data: TemplateData) -> str:
    """Parse (cached) and render ``source``."""
    return parse_template(source).render(data)


def _parse_nodes(pieces: list[tuple[str, str]], i: int, *, top: bool) -> tuple[list[_Node], int]:
    nodes: list[_Node] = []
    while i < len(pieces):
        kind, body = pieces[i]
        if kind == "text":
            if body:
                nodes.append(_Text(body))
            i += 1
            continue
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError("unclosed comment")
            i += 1
            continue
        word = stripped.split(None, 1)[0] if stripped else ""
        if word in ("end", "else"):
            if top:
                raise TemplateError(f"unexpected {{{{{stripped}}}}}")
            return nodes, i
        if word == "if":
            node, i = _parse_if(pieces, i)
            nodes.append(node)
            continue
        if word in ("range", "with", "define", "template", "block"):
            raise TemplateError(f"{{{{{word}}}}} is not supported by soulwatch templates")
        if not stripped:
            raise TemplateError("missing value for command")
        nodes.append(_Action(_parse_pipeline(stripped)))
        i += 1
    if not top:
        raise TemplateError("unexpected EOF: missing {{end}}")
    return nodes, i


def _parse_if(pieces: list[tuple[str, str]], i: int) -> tuple[_If, int]:
    cond = pieces[i][1].strip()[2:].strip()
    if not cond:
        raise TemplateError("missing value for if")
    node = _If([])
    while True:
        body, i = _parse_nodes(pieces, i + 1, top=False)
        node.branches.append((_parse_pipeline(cond), body))
        closing = pieces[i][1].strip()
        if closing == "end":
            return node, i + 1
        rest = closing[4:].strip()  # after "else"
        if rest.startswith("if"):
            cond = rest[2:].strip()
            continue
        if rest:
            raise TemplateError(f"unexpected {rest!r} after else")
        node.otherwise, i = _parse_nodes(pieces, i + 1, top=False)
        if pieces[i][1].strip() != "end":
            raise TemplateError("expected {{end}}")
        return node, i + 1


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"unexpected {text[pos:].strip()[:10]!r} in command")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _parse_pipeline(text: str) -> _Pipeline:
    tokens = _tokenize(text)
    pipe, rest = _pipeline_tokens(tokens)
    if rest:
        raise TemplateError(f"unexpected {rest[0][1]!r} in command")
    return pipe


def _pipeline_tokens(tokens: list[tuple[str, str]]) -> tuple[_Pipeline, list[tuple[str, str]]]:
    declare = None
    if len(tokens) >= 2 and tokens[0][0] == "var" and tokens[1][0] == "assign":
        declare = tokens[0][1]
        tokens = tokens[2:]
    commands: list[_Command] = []
    operands: list[_Operand] = []
    while tokens:
        kind, text = tokens[0]
        if kind == "punct" and text == ")":
            break
        tokens = tokens[1:]
        if kind == "punct" and text == "|":
            if not operands:
                raise TemplateError("missing command before '|'")
            commands.append(_Command(operands))
            operands = []
            continue
        if kind == "punct" and text == "(":
            inner, tokens = _pipeline_tokens(tokens)
            if not tokens or tokens[0][1] != ")":
                raise TemplateError("unclosed left paren")
            tokens = tokens[1:]
            operands.append(_Operand("pipe", inner))
            continue
        operands.append(_operand(kind, text))
        while tokens and tokens[0][0] == "field" and operands[-1].kind in ("var", "dot"):
            last = operands[-1]
            operands[-1] = _Operand(last.kind, last.value, (*last.fields, tokens[0][1][1:]))
            tokens = tokens[1:]
    if not operands:
        raise TemplateError("missing value for command")
    commands.append(_Command(operands))
    for cmd in commands[1:]:
        if cmd.operands[0].kind != "func":
            raise TemplateError("non executable command in pipeline stage")
    return _Pipeline(commands, declare), tokens


def _operand(kind: str, text: str) -> _Operand:
    if kind == "str":
        return _Operand("str", bytes(text[1:-1], "utf-8").decode("unicode_escape"))
    if kind == "raw":
        return _Operand("str", text[1:-1])
    if kind == "num":
        return _Operand("num", float(text) if any(c in text for c in ".eE") else int(text))
    if kind == "var":
        return _Operand("var", text)
    if kind == "dot":
        return _Operand("dot", ".")
    if kind == "field":
        return _Operand("dot", ".", (text[1:],))
    if kind == "ident":
        if text in ("true", "false"):
            return _Operand("bool", text == "true")
        if text == "nil":
            return _Operand("str", None)
        if text not in _FUNCS:
            raise TemplateError(f'function "{text}" not defined')
        return _Operand("func", text)
    raise TemplateError(f"unexpected {text!r} in command")


# --- running ----------------------------------------------------------------


def _run(nodes: list[_Node], scope: dict[str, object], out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Action):
            value = _eval_pipeline(node.pipe, scope)
            if node.pipe.declare is None:
                out.append(format_value(value))
        else:
            for cond, body in node.branches:
                if _truth(_eval_pipeline(cond, scope)):
                    _run(body, scope, out)
                    break
            else:
                _run(node.otherwise, scope, out)


def _eval_pipeline(pipe: _Pipeline, scope: dict[str, object]) -> object:
    value: object = None
    for i, cmd in enumerate(pipe.commands):
        value = _eval_command(cmd, scope, [value] if i > 0 else [])
    if pipe.declare is not None:
        scope[pipe.declare] = value
    return value


def _eval_command(cmd: _Command, scope: dict[str, object], piped: list[object]) -> object:
    head = cmd.operands[0]
    if head.kind == "func":
        args = [_eval_operand(op, scope) for op in cmd.operands[1:]] + piped
        try:
            return _FUNCS[head.value](*args)
        except TemplateError:
            raise
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise TemplateError(f"error calling {head.value}: {exc}") from exc
    if len(cmd.operands) > 1 or piped:
        raise TemplateError("can't give argument to non-function")
    return _eval_operand(head, scope)


def _eval_operand(op: _Operand, scope: dict[str, object]) -> object:
    if op.kind in ("str", "num", "bool"):
        return op.value
    if op.kind == "pipe":
        return _eval_pipeline(op.value, scope)
    if op.kind == "func":
        return _FUNCS[op.value]()
    if op.kind == "var":
        if op.value not in scope:
            raise TemplateError(f"undefined variable: {op.value}")
        value = scope[op.value]
    else:
        value = scope["$"]
    for name in op.fields:
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
        # Prometheus renders with missingkey=zero: an absent label is "".
        value = value.get(name, "")
    return value


def _truth(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    return bool(value)


# --- functions --------------------------------------------------------------


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise TemplateError(f"can't convert {value} to float")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as exc:
            raise TemplateError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from exc
    raise TemplateError(f"can't convert {value!r} to float")


def _scaled(v: float, base: float, prefixes: Sequence[str]) -> tuple[float, str]:
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix = p
        v /= base
    return v, prefix


def _small(v: float) -> tuple[float, str]:
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return v, prefix


def humanize(value: object) -> str:
    """``1234567`` → ``1.235M``; ``0.0012`` → ``1.2m`` (Prometheus's humanize)."""
    v = _float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    if abs(v) >= 1:
        v, prefix = _scaled(v, 1000, ("k", "M", "G", "T", "P", "E", "Z", "Y"))
    else:
        v, prefix = _small(v)
    return format_g(v, 4) + prefix


def humanize1024(value: object) -> str:
    """Like :func:`humanize` with powers of 1024 (``ki``, ``Mi``...)."""
    v = _float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    v, prefix = _scaled(v, 1024, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"))
    return format_g(v, 4) + prefix


def humanize_duration(value: object) -> str:
    """Seconds as ``1d 2h 3m 4s``, ``1m 30s``, ``2.5s`` or ``150ms``."""
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    if v == 0:
        return format_g(v, 4) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        total = int(v)
        seconds, minutes = total % 60, (total // 60) % 60
        hours, days = (total // 3600) % 24, total // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{format_g(v, 4)}s"
    v, prefix = _small(v)
    return f"{format_g(v, 4)}{prefix}s"


def humanize_percentage(value: object) -> str:
    """``0.1234`` → ``12.34%``."""
    return format_g(_float(value) * 100, 4) + "%"


def humanize_timestamp(value: object) -> str:
    """Unix seconds as ``2006-01-02 15:04:05 +0000 UTC``."""
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return format_g(v, 4)
    t = _dt.datetime.fromtimestamp(v, tz=_dt.UTC)
    frac = f"{t.microsecond / 1e6:.6f}"[1:].rstrip("0").rstrip(".")
    return t.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: object, *others: object) -> bool:
        if not others:
            raise TemplateError("missing argument for comparison")
        return all(op(_comparable(a), _comparable(b)) for b in others)

    return compare


def _comparable(v: object) -> object:
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _and(*args: object) -> object:
    for arg in args:
        if not _truth(arg):
            return arg
    return args[-1]


def _or(*args: object) -> object:
    for arg in args:
        if _truth(arg):
            return arg
    return args[-1]


def _index(container: object, *keys: object) -> object:
    for key in keys:
        if isinstance(container, Mapping):
            container = container.get(key, "")
        else:
            raise TemplateError(f"can't index item of type {type(container).__name__}")
    return container


_FUNCS: dict[str, Callable[..., object]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp,
    "printf": lambda fmt, *args: sprintf(str(fmt), args),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "eq": _compare(lambda a, b: a == b),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda v: not _truth(v),
    "len": len,
    "index": _index,
}
