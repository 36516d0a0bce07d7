"""Label and ordering functions: label_replace, label_join, sort, sort_by_label."""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.aggregations import go_quote, valid_label_name
from soulwatch.promql.ast import Call
from soulwatch.promql.funcargs import Handler, string_arg, vector_arg
from soulwatch.promql.stepvec import StepSeries, StepValue, merge_same_labels
from soulwatch.tsdb.model import METRIC_NAME
from soulwatch.tsdb.regex import CaptureMatch, RegexError, compile_regex

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator


# -- sorting ----------------------------------------------------------------------


def _sort_warning(ev: Evaluator, node: Call) -> None:
    if ev.is_range_query:
        ev.annotations.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
            node.pos,
        )


def _sort_by_value(descending: bool) -> Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        _sort_warning(ev, node)
        vec = vector_arg(ev, node, 0, ts)
        if len(ts) != 1:
            return vec

        def key(s: StepSeries) -> tuple[bool, float]:
            v = s.vals[0]
            assert v is not None
            return (math.isnan(v), -v if descending else v)

        return sorted((s for s in vec if s.vals[0] is not None), key=key)

    return handler


def _sort_by_label(descending: bool) -> Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        _sort_warning(ev, node)
        vec = vector_arg(ev, node, 0, ts)
        names = [string_arg(ev, node, i, ts) for i in range(1, len(node.args))]

        def compare(a: StepSeries, b: StepSeries) -> int:
            for name in names:
                x, y = a.labels.get(name), b.labels.get(name)
                if x != y:
                    return -1 if natural_less(x, y) else 1
            return (a.labels > b.labels) - (a.labels < b.labels)

        return sorted(vec, key=functools.cmp_to_key(compare), reverse=descending)

    return handler


_CHUNK = re.compile(r"\d+|\D+")


def natural_less(a: str, b: str) -> bool:
    """Natural ordering (``cpu2`` before ``cpu10``), as Prometheus's sort_by_label."""
    xs: list[str] = _CHUNK.findall(a)
    ys: list[str] = _CHUNK.findall(b)
    for i, x in enumerate(xs):
        if i >= len(ys):
            return False
        y = ys[i]
        if x.isdigit() and y.isdigit():
            if int(x) != int(y):
                return int(x) < int(y)
        elif x != y:
            return x < y
        if i == len(xs) - 1:
            return True
        if i == len(ys) - 1:
            return False
    return False


# -- labels -----------------------------------------------------------------------

_TEMPLATE = re.compile(r"\$(\$|\{([^}]*)\}|([A-Za-z0-9_]+))")


def expand_template(template: str, match: CaptureMatch) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""

    def group(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        ref = m.group(2) if m.group(2) is not None else m.group(3)
        try:
            value = match.group(int(ref) if ref.isdigit() else ref)
        except (IndexError, KeyError, re.error):
            return ""
        return value or ""

    return _TEMPLATE.sub(group, template)


def _label_replace(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    dst, repl, src, pattern = (string_arg(ev, node, i, ts) for i in range(1, 5))
    try:
        regex = compile_regex(pattern)
    except RegexError as exc:
        raise EvaluationError(f"invalid regular expression in label_replace(): {pattern}") from exc
    if not valid_label_name(dst):
        raise EvaluationError(f"invalid destination label name in label_replace(): {go_quote(dst)}")
    out = []
    for s in vec:
        m = regex.capture(s.labels.get(src))
        if m is None:
            out.append(s)
            continue
        value = expand_template(repl, m)
        labels = s.labels.with_({dst: value})
        out.append(StepSeries(labels, list(s.vals), s.drop_name and dst != METRIC_NAME))
    return merge_same_labels(out)


def _label_join(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    dst = string_arg(ev, node, 1, ts)
    sep = string_arg(ev, node, 2, ts)
    srcs = [string_arg(ev, node, i, ts) for i in range(3, len(node.args))]
    if not valid_label_name(dst):
        raise EvaluationError(f"invalid destination label name in label_join(): {go_quote(dst)}")
    out = []
    for s in vec:
        value = sep.join(s.labels.get(name) for name in srcs)
        labels = s.labels.with_({dst: value})
        out.append(StepSeries(labels, list(s.vals), s.drop_name and dst != METRIC_NAME))
    return merge_same_labels(out)


HANDLERS: dict[str, Handler] = {
    "sort": _sort_by_value(False),
    "sort_desc": _sort_by_value(True),
    "sort_by_label": _sort_by_label(False),
    "sort_by_label_desc": _sort_by_label(True),
    "label_replace": _label_replace,
    "label_join": _label_join,
}
