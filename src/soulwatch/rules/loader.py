"""Loading Prometheus rule files, with every problem named by ``file:line:col``.

The YAML is composed (not just loaded) so that every key and value keeps its
position. Validation follows ``promtool check rules``: unknown keys are
errors, exactly one of ``record``/``alert``, a parseable ``expr``, valid
durations, metric and label names, and annotation/label templates that parse.

soulwatch accepts a few keys Prometheus 2.42 does not: group ``labels`` and
``query_offset`` (both Prometheus 3) and, on alerting rules, the soulwatch
extensions ``recover_expr`` and ``no_data``. A file using the extensions is
soulwatch-only: promtool rejects unknown keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from soulwatch.config_loading import check_node
from soulwatch.exceptions import ConfigError, ParseError, RuleFileError
from soulwatch.rules.model import (
    LABEL_NAME_RE,
    METRIC_NAME_RE,
    GroupSpec,
    NoDataPolicy,
    Position,
    RuleKind,
    RuleSpec,
    parse_duration,
)
from soulwatch.rules.templates import TemplateError, parse_template

#: Validates one PromQL expression; raises :class:`ParseError`.
ExprValidator = Callable[[str], object]

_GROUP_KEYS = {"name", "interval", "limit", "query_offset", "labels", "rules"}
_RULE_KEYS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
_EXTENSION_KEYS = {"recover_expr", "no_data"}


class RuleFileProblems(RuleFileError):
    """A rule file failed to load; ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[RuleFileError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.reason, file=first.file, line=first.line, column=first.column)


def default_expr_validator() -> ExprValidator:
    """The PromQL parser's ``parse`` (imported lazily: the loader works without the engine)."""
    from soulwatch.promql.parser import parse

    return parse


def load_rule_files(
    paths: Iterable[str | Path], *, validate_expr: ExprValidator | None = None
) -> list[GroupSpec]:
    """Every group of every file, in order; raises :class:`RuleFileProblems` on any problem."""
    groups: list[GroupSpec] = []
    problems: list[RuleFileError] = []
    for path in paths:
        file_groups, file_problems = check_rule_file(path, validate_expr=validate_expr)
        groups.extend(file_groups)
        problems.extend(file_problems)
    if problems:
        raise RuleFileProblems(problems)
    return groups


def check_rule_file(
    path: str | Path, *, validate_expr: ExprValidator | None = None
) -> tuple[list[GroupSpec], list[RuleFileError]]:
    """Parse one file; returns the groups that loaded and every problem found."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleFileError(f"cannot read rule file: {exc}", file=name)]
    return parse_rule_text(text, name, validate_expr=validate_expr)


@dataclass(frozen=True)
class RuleFileWarning:
    """Something in a rule file that the ``--target`` Prometheus would not load."""

    message: str
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


#: Group fields that Prometheus 2.x lacks, with the version that added them.
_NEWER_GROUP_FIELDS = {
    "query_offset": "needs Prometheus 2.53 or later",
    "labels": "needs Prometheus 3",
}


def check_portability(path: str | Path, target: str) -> list[RuleFileWarning]:
    """Where the rule file at ``path`` would not load on ``target`` (``prometheus-2``).

    Reports newer group fields and, in each ``expr``, the PromQL syntax and
    functions Prometheus 2.x lacks (see :mod:`soulwatch.promql.portability`).
    Parts that do not parse are left to :func:`check_rule_file`.
    """
    from soulwatch.promql.portability import TARGETS, prometheus2_incompatibilities

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    name = str(path)
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    warnings: list[RuleFileWarning] = []
    for group in _items(_field(root, "groups")):
        for key, _ in _pairs(group):
            note = _NEWER_GROUP_FIELDS.get(key.value)
            if note is not None:
                mark = key.start_mark
                message = f"group field '{key.value}' {note}"
                warnings.append(RuleFileWarning(message, name, mark.line + 1, mark.column + 1))
        for rule in _items(_field(group, "rules")):
            expr = _field(rule, "expr")
            if not isinstance(expr, ScalarNode):
                continue
            for found in prometheus2_incompatibilities(expr.value):
                line, column = _position_in_value(expr, found.line, found.column)
                warnings.append(RuleFileWarning(found.message, name, line, column))
    return warnings


def _pairs(node: Node | None) -> list[tuple[ScalarNode, Node]]:
    if not isinstance(node, MappingNode):
        return []
    return [(k, v) for k, v in node.value if isinstance(k, ScalarNode)]


def _field(node: Node | None, key: str) -> Node | None:
    return next((v for k, v in _pairs(node) if k.value == key), None)


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def parse_rule_text(
    text: str, file: str, *, validate_expr: ExprValidator | None = None
) -> tuple[list[GroupSpec], list[RuleFileError]]:
    """Parse rule-file text (``file`` names it in errors)."""
    parser = _Parser(file, validate_expr or default_expr_validator())
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        reason = f"yaml: {exc.problem or exc}"
        if mark is None:
            return [], [RuleFileError(reason, file=file)]
        return [], [RuleFileError(reason, file=file, line=mark.line + 1, column=mark.column + 1)]
    try:
        # Duplicate keys and aliases expanding without bound, as in soulwatch.yaml.
        check_node(root, file)
    except ConfigError as exc:
        return [], [RuleFileError(exc.reason, file=file, line=exc.line, column=exc.column)]
    if root is None:
        return [], []
    groups = parser.document(root)
    return groups, parser.problems


class _Parser:
    def __init__(self, file: str, validate_expr: ExprValidator) -> None:
        self.file = file
        self.validate_expr = validate_expr
        self.problems: list[RuleFileError] = []

    def pos(self, node: Node) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: Node, reason: str) -> None:
        p = self.pos(node)
        self.problems.append(RuleFileError(reason, file=self.file, line=p.line, column=p.column))

    def mapping(self, node: Node, what: str, allowed: set[str]) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return {}
        out: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in out:
                self.error(key, f"duplicate key {name!r} in {what}")
            elif name not in allowed:
                self.error(key, f"field {name} not found in {what}")
            out[name] = (key, value)
        return out

    def string(self, node: Node, what: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.error(node, f"{what} must be a string")
            return None
        return str(node.value)

    def duration(self, node: Node, what: str) -> float | None:
        text = self.string(node, what)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.error(node, f"{what}: {exc}")
            return None

    def string_map(self, node: Node, what: str, *, templates: bool) -> dict[str, str]:
        if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
            return {}
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping of names to strings")
            return {}
        out: dict[str, str] = {}
        for key, value in node.value:
            name = str(key.value)
            if not LABEL_NAME_RE.match(name):
                self.error(key, f"invalid {what} name: {name}")
            text = self.string(value, f"{what} {name}")
            if text is None:
                continue
            if templates:
                try:
                    parse_template(text)
                except TemplateError as exc:
                    self.error(value, f"{what} {name}: template: {exc}")
            out[name] = text
        return out

    def document(self, root: Node) -> list[GroupSpec]:
        top = self.mapping(root, "rule file", {"groups"})
        if "groups" not in top:
            if top or isinstance(root, MappingNode):
                self.error(root, "rule file has no 'groups'")
            return []
        _, seq = top["groups"]
        if not isinstance(seq, SequenceNode):
            self.error(seq, "groups must be a list")
            return []
        groups: list[GroupSpec] = []
        seen: set[str] = set()
        for node in seq.value:
            group = self.group(node)
            if group is None:
                continue
            if group.name in seen:
                self.error(node, f'groupname: "{group.name}" is repeated in the same file')
            seen.add(group.name)
            groups.append(group)
        return groups

    def group(self, node: Node) -> GroupSpec | None:
        fields = self.mapping(node, "rule group", _GROUP_KEYS)
        if not fields and not isinstance(node, MappingNode):
            return None
        name = self.string(fields["name"][1], "name") if "name" in fields else None
        if not name:
            self.error(node, "Groupname must not be empty")
            name = ""
        interval = (
            self.duration(fields["interval"][1], "interval") if "interval" in fields else None
        )
        if interval is not None and interval <= 0:
            self.error(fields["interval"][1], "interval must be positive")
        offset = 0.0
        if "query_offset" in fields:
            offset = self.duration(fields["query_offset"][1], "query_offset") or 0.0
        limit = 0
        if "limit" in fields:
            text = self.string(fields["limit"][1], "limit")
            if text is not None and text.isdigit():
                limit = int(text)
            else:
                self.error(fields["limit"][1], "limit must be a non-negative integer")
        labels = (
            self.string_map(fields["labels"][1], "label", templates=False)
            if "labels" in fields
            else {}
        )
        rules: list[RuleSpec] = []
        if "rules" in fields:
            seq = fields["rules"][1]
            if isinstance(seq, SequenceNode):
                for rule_node in seq.value:
                    rule = self.rule(rule_node)
                    if rule is not None:
                        rules.append(rule)
            elif not (isinstance(seq, ScalarNode) and seq.tag.endswith(":null")):
                self.error(seq, "rules must be a list")
        return GroupSpec(
            name=name,
            file=self.file,
            position=self.pos(node),
            rules=tuple(rules),
            interval_s=interval,
            limit=limit,
            query_offset_s=offset,
            labels=labels,
        )

    def rule(self, node: Node) -> RuleSpec | None:
        fields = self.mapping(node, "rule", _RULE_KEYS | _EXTENSION_KEYS)
        if not fields:
            return None
        has_record, has_alert = "record" in fields, "alert" in fields
        if has_record == has_alert:
            self.error(node, "one of 'record' or 'alert' must be set")
            return None
        kind = RuleKind.RECORD if has_record else RuleKind.ALERT
        name_node = fields[kind.value][1]
        name = self.string(name_node, kind.value) or ""
        if kind is RuleKind.RECORD and not METRIC_NAME_RE.match(name):
            self.error(name_node, f"invalid recording rule name: {name}")
        if kind is RuleKind.ALERT and not name:
            self.error(name_node, "field 'alert' must be set in rule")
        if kind is RuleKind.RECORD:
            for key in ("for", "keep_firing_for", "annotations", *_EXTENSION_KEYS):
                if key in fields:
                    self.error(fields[key][0], f"invalid field '{key}' in recording rule")
        expr, expr_pos = self.expr(fields.get("expr"), node, "expr")
        recover_expr = None
        if "recover_expr" in fields:
            recover_expr, _ = self.expr(fields["recover_expr"], node, "recover_expr")
        no_data = NoDataPolicy.OK
        if "no_data" in fields:
            text = self.string(fields["no_data"][1], "no_data") or ""
            try:
                no_data = NoDataPolicy(text)
            except ValueError:
                choices = "|".join(p.value for p in NoDataPolicy)
                self.error(fields["no_data"][1], f"no_data must be one of {choices}, not {text!r}")
        labels: dict[str, str] = {}
        if "labels" in fields:
            # Only alerting rules template their labels (as in Prometheus).
            labels = self.string_map(fields["labels"][1], "label", templates=kind is RuleKind.ALERT)
            if "__name__" in labels:
                self.error(fields["labels"][1], "invalid label name: __name__")
        annotations: dict[str, str] = {}
        if "annotations" in fields:
            annotations = self.string_map(fields["annotations"][1], "annotation", templates=True)
        for_s = self.duration(fields["for"][1], "for") or 0.0 if "for" in fields else 0.0
        keep = 0.0
        if "keep_firing_for" in fields:
            keep = self.duration(fields["keep_firing_for"][1], "keep_firing_for") or 0.0
        if expr is None:
            return None
        return RuleSpec(
            kind=kind,
            name=name,
            expr=expr,
            position=self.pos(node),
            expr_position=expr_pos,
            for_s=for_s,
            keep_firing_for_s=keep,
            labels=labels,
            annotations=annotations,
            recover_expr=recover_expr,
            no_data=no_data,
        )

    def expr(
        self, field: tuple[Node, Node] | None, rule_node: Node, key: str
    ) -> tuple[str | None, Position]:
        if field is None:
            self.error(rule_node, f"field '{key}' must be set in rule")
            return None, self.pos(rule_node)
        value = field[1]
        text = self.string(value, key)
        pos = self.pos(value)
        if text is None:
            return None, pos
        if not text.strip():
            self.error(value, f"field '{key}' must be set in rule")
            return None, pos
        try:
            self.validate_expr(text)
        except ParseError as exc:
            line, column = _position_in_value(value, exc.line, exc.column)
            self.problems.append(
                RuleFileError(
                    f"could not parse expression: {exc.reason}",
                    file=self.file,
                    line=line,
                    column=column,
                )
            )
            return None, pos
        return text, pos


def _position_in_value(node: ScalarNode | Node, line: int, column: int) -> tuple[int, int]:
    """Map a 1-based position inside a scalar's text to a position in the file."""
    start_line = node.start_mark.line + 1
    start_col = node.start_mark.column + 1
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        # Block scalars start on the line after the indicator, indented.
        indent = _block_indent(node)
        return start_line + line, indent + column
    if line == 1:
        quote = 1 if style in ("'", '"') else 0
        return start_line, start_col + quote + column - 1
    return start_line + line - 1, column


def _block_indent(node: Node) -> int:
    """The indentation of a block scalar's first content line (from the YAML source)."""
    buffer = getattr(node.start_mark, "buffer", None)
    if isinstance(buffer, str):
        lines = buffer.split("\n")
        for text in lines[node.start_mark.line + 1 :]:
            if text.strip():
                return len(text) - len(text.lstrip())
    return node.start_mark.column + 2
