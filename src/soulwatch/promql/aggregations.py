"""Aggregation operators: sum, avg, min, max, count, group, stddev, stdvar,
topk, bottomk, quantile, count_values, limitk and limit_ratio, with by/without.

Each series' group is computed once; the per-step work is the arithmetic
over the values present at that step.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from soulwatch.exceptions import EvaluationError, QueryError
from soulwatch.promql import columnar
from soulwatch.promql.ast import AggregateExpr
from soulwatch.promql.stepvec import (
    ScalarSteps,
    StepSeries,
    StepValue,
    StringValue,
    format_float,
    kahan_inc,
    sorted_labels,
)
from soulwatch.tsdb.model import METRIC_NAME, Labels

try:
    from soulwatch.promql import colaggs
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    colaggs = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator


def sum_values(values: list[float]) -> float:
    """Kahan-Neumaier sum, as Prometheus's ``sum``."""
    it = iter(values)
    total = next(it)
    c = 0.0
    isinf = math.isinf
    for v in it:  # kahan_inc, inlined: this is the hottest loop of sum()
        t = total + v
        if isinf(t):
            c = 0.0
        elif abs(total) >= abs(v):
            c += (total - t) + v
        else:
            c += (v - t) + total
        total = t
    return total + c if not isinf(total) else total


def avg_values(values: list[float]) -> float:
    """Mean with Kahan summation, falling back to an incremental mean on overflow."""
    count = 1.0
    total, c = values[0], 0.0
    mean = 0.0
    incremental = False
    for f in values[1:]:
        count += 1
        if not incremental:
            new_total, new_c = kahan_inc(f, total, c)
            if not math.isinf(new_total):
                total, c = new_total, new_c
                continue
            incremental = True
            mean = total / (count - 1)
            c = c / (count - 1)
        if math.isinf(mean):
            if math.isinf(f) and (mean > 0) == (f > 0):
                continue
            if not math.isinf(f) and not math.isnan(f):
                continue
        current = mean + c
        mean, c = kahan_inc(f / count - current / count, mean, c)
    if incremental:
        return mean + c
    if math.isinf(total):
        return total / count
    return (total + c) / count


def stdvar_values(values: list[float]) -> float:
    """Population variance (Welford with Kahan compensation)."""
    count = 0.0
    mean, c_mean = 0.0, 0.0
    aux, c_aux = 0.0, 0.0
    for f in values:
        count += 1
        delta = f - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, mean, c_mean)
        aux, c_aux = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def _min(values: list[float]) -> float:
    out = values[0]
    for v in values[1:]:
        if out > v or math.isnan(out):
            out = v
    return out


def _max(values: list[float]) -> float:
    out = values[0]
    for v in values[1:]:
        if out < v or math.isnan(out):
            out = v
    return out


def _stdvar(values: list[float]) -> float:
    """Population variance as Prometheus's ``stdvar``/``stddev`` aggregation computes it.

    Welford's update without compensation (unlike ``stdvar_over_time``); a
    group whose first value is NaN or infinite stays NaN.
    """
    mean = values[0]
    variance = 0.0 if math.isfinite(mean) else math.nan
    count = 1.0
    for f in values[1:]:
        count += 1.0
        delta = f - mean
        mean += delta / count
        variance += delta * (f - mean)
    return variance / count


def go_sqrt(value: float) -> float:
    """``math.Sqrt`` as Go computes it: NaN for a negative number, not an error.

    Rounding can leave a variance of huge or infinite values below zero.
    """
    return math.nan if value < 0 else math.sqrt(value)


def _stddev(values: list[float]) -> float:
    return go_sqrt(_stdvar(values))


def nan_first_key(v: float) -> tuple[bool, float]:
    """Sort key ordering NaN before every number, as Prometheus's value heap does."""
    return (not math.isnan(v), v)


def quantile(q: float, values: list[float]) -> float:
    """The φ-quantile with linear interpolation between closest ranks."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=nan_first_key)
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


SIMPLE: dict[str, Callable[[list[float]], float]] = {
    "sum": sum_values,
    "avg": avg_values,
    "min": _min,
    "max": _max,
    "count": lambda vs: float(len(vs)),
    "group": lambda vs: 1.0,
    "stddev": _stddev,
    "stdvar": _stdvar,
}


def format_g(value: float) -> str:
    """A float as Go's ``%g`` prints it in Prometheus's messages."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format_float(value) if abs(value) < 1e21 else repr(value)


def evaluate(ev: Evaluator, node: AggregateExpr, ts: list[int]) -> StepValue:
    """Evaluate an aggregation at every step."""
    op = node.op
    param: StepValue | None = ev.eval(node.param, ts) if node.param is not None else None
    value = ev.eval(node.expr, ts)
    if not isinstance(value, list):
        raise QueryError(f"expected instant vector in aggregation {op}")
    n = len(ts)
    groups = _group(value, node)
    ev.check_time()
    # A range query's groups as whole step-columns (:mod:`.colaggs`); an
    # instant query's single step stays on the lists.
    on_columns = ev.columnar and colaggs is not None and n > 1
    if op in SIMPLE:
        if ev.columnar and op in columnar.AGGREGATIONS and n > 1:
            # Whole step-columns at once; the same fold, in the same order.
            return _keep_drop_flags(columnar.aggregate(op, groups, n), groups)
        return _keep_drop_flags(_simple(SIMPLE[op], groups, n), groups)
    if op == "quantile":
        assert isinstance(param, ScalarSteps)
        assert node.param is not None
        qs = param.vals
        for q in qs:
            if not 0 <= q <= 1:
                ev.annotations.warn(
                    f"quantile value should be between 0 and 1, got {format_g(q)}",
                    _pos(node.param),
                )
        if on_columns:
            return _keep_drop_flags(colaggs.quantile(groups, qs), groups)
        out = []
        for labels, members in groups.items():
            vals: list[float | None] = [None] * n
            for i in range(n):
                present = [v for s in members if (v := s.vals[i]) is not None]
                if present:
                    vals[i] = quantile(qs[i], present)
            out.append(StepSeries(labels, vals))
        return _keep_drop_flags(out, groups)
    if op == "count_values":
        assert isinstance(param, StringValue)
        if on_columns:
            _check_label(param.value)
            return colaggs.count_values(param.value, groups, n)
        return _count_values(param.value, groups, n)
    if op in ("topk", "bottomk", "limitk"):
        assert isinstance(param, ScalarSteps)
        if on_columns:
            return colaggs.select_k(op, [_k_of(p) for p in param.vals], groups)
        return _select_k(op, param.vals, groups, n)
    if op == "limit_ratio":
        assert isinstance(param, ScalarSteps)
        assert node.param is not None
        ratios = _ratios(ev, param.vals, _pos(node.param))
        if on_columns:
            offsets = [_ratio_offset(s.labels) for members in groups.values() for s in members]
            return colaggs.limit_ratio(groups, ratios, offsets)
        return _limit_ratio(ratios, groups)
    raise QueryError(f"unknown aggregation {op!r}")


def _pos(node: object) -> int:
    return int(getattr(node, "pos", 0))


def _keep_drop_flags(
    out: list[StepSeries], groups: dict[Labels, list[StepSeries]]
) -> list[StepSeries]:
    """Under delayed name removal, ``by (__name__)`` keeps a name that is still to go.

    The group's name is dropped at the end if any of its members' was
    (Prometheus's ``promql-delayed-name-removal``). Without the feature no
    input carries a pending removal, and nothing changes.
    """
    for index, s in enumerate(out):
        if s.labels.get(METRIC_NAME) and any(m.drop_name for m in groups.get(s.labels, ())):
            out[index] = s.relabelled(s.labels, True)
    return out


def _group(value: list[StepSeries], node: AggregateExpr) -> dict[Labels, list[StepSeries]]:
    groups: dict[Labels, list[StepSeries]] = {}
    grouping = frozenset(node.grouping)
    without = node.without
    if without:
        grouping = grouping | {METRIC_NAME}
    keys: dict[tuple[tuple[str, str], ...], Labels] = {}
    for s in value:
        if without:
            raw = tuple([p for p in s.labels if p[0] not in grouping])
        else:
            raw = tuple([p for p in s.labels if p[0] in grouping])
        key = keys.get(raw)
        if key is None:
            key = keys[raw] = sorted_labels(raw)
        groups.setdefault(key, []).append(s)
    return groups


def _simple(
    fn: Callable[[list[float]], float], groups: dict[Labels, list[StepSeries]], n: int
) -> list[StepSeries]:
    out = []
    for labels, members in groups.items():
        if n == 1:
            present = [v for s in members if (v := s.vals[0]) is not None]
            if present:
                out.append(StepSeries(labels, [fn(present)]))
            continue
        columns: list[list[float]] = [[] for _ in range(n)]
        for s in members:
            for i, v in enumerate(s.vals):
                if v is not None:
                    columns[i].append(v)
        vals: list[float | None] = [fn(col) if col else None for col in columns]
        out.append(StepSeries(labels, vals))
    return [s for s in out if any(v is not None for v in s.vals)]


def _check_label(label: str) -> None:
    if not label or not valid_label_name(label):
        raise EvaluationError(f"invalid label name {go_quote(label)}")


def _count_values(label: str, groups: dict[Labels, list[StepSeries]], n: int) -> list[StepSeries]:
    _check_label(label)
    out: dict[Labels, StepSeries] = {}
    for labels, members in groups.items():
        for i in range(n):
            counts: dict[str, int] = {}
            for s in members:
                v = s.vals[i]
                if v is not None:
                    text = format_float(v)
                    counts[text] = counts.get(text, 0) + 1
            for text, count in counts.items():
                key = labels.with_({label: text})
                series = out.get(key)
                if series is None:
                    series = out[key] = StepSeries(key, [None] * n)
                series.vals[i] = float(count)
    return list(out.values())


def valid_label_name(name: str) -> bool:
    """A label name is any non-empty valid UTF-8 string (Prometheus 3)."""
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def go_quote(text: str) -> str:
    """Quote as Go's ``%q``, showing bytes that were not UTF-8 as ``\\xNN``."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _k_of(value: float) -> int:
    if math.isnan(value):
        raise EvaluationError("Parameter value is NaN")
    if value >= 2**63:
        return 2**63 - 1
    if value <= -(2**63):
        return -(2**63)
    return int(value)


def _select_k(
    op: str, params: list[float], groups: dict[Labels, list[StepSeries]], n: int
) -> list[StepSeries]:
    ks = [_k_of(p) for p in params]
    picked: dict[int, StepSeries] = {}
    order: list[int] = []
    for members in groups.values():
        for i in range(n):
            k = ks[i]
            if k < 1:
                continue
            present = [(v, j) for j, s in enumerate(members) if (v := s.vals[i]) is not None]
            if op == "topk":
                present.sort(key=lambda p: (p[0] != p[0], -p[0] if p[0] == p[0] else 0.0))
            elif op == "bottomk":
                present.sort(key=lambda p: (p[0] != p[0], p[0] if p[0] == p[0] else 0.0))
            for v, j in present[:k]:
                s = members[j]
                key = id(s)
                out = picked.get(key)
                if out is None:
                    out = picked[key] = StepSeries(s.labels, [None] * n, s.drop_name)
                    order.append(key)
                out.vals[i] = v
    return [picked[key] for key in order]


def _ratio_offset(labels: Labels) -> float:
    # A stable per-series position in [0, 1): the same series is kept at every step.
    data = b"\xff".join(f"{n}\xff{v}".encode("utf-8", "surrogateescape") for n, v in labels)
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _ratios(ev: Evaluator, params: list[float], pos: int) -> list[float]:
    """``limit_ratio``'s ratio at each step, clamped to [-1, 1] (with a warning)."""
    ratios = []
    for given in params:
        if math.isnan(given):
            raise EvaluationError("Ratio value is NaN")
        if not -1 <= given <= 1:
            ev.annotations.warn(
                f"ratio value should be between -1 and 1, got {format_g(given)}", pos
            )
        ratios.append(max(-1.0, min(1.0, given)))
    return ratios


def _limit_ratio(ratios: list[float], groups: dict[Labels, list[StepSeries]]) -> list[StepSeries]:
    out = []
    for members in groups.values():
        for s in members:
            offset = _ratio_offset(s.labels)
            vals: list[float | None] = [
                v
                if v is not None and ((r >= 0 and offset < r) or (r < 0 and offset >= 1 + r))
                else None
                for v, r in zip(s.vals, ratios, strict=True)
            ]
            if any(v is not None for v in vals):
                out.append(StepSeries(s.labels, vals, s.drop_name))
    return out
