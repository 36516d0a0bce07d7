"""Rule unit tests in ``promtool test rules`` format.

A test file names ``rule_files`` (relative to the test file), an
``evaluation_interval`` and ``tests``; each test loads ``input_series`` into a
fresh in-memory storage, evaluates every group at every evaluation interval
from 0 to the last ``eval_time``, and compares:

* ``alert_rule_test``: the *firing* alerts of ``alertname`` (labels and
  annotations) at the evaluation at or just before ``eval_time``;
* ``promql_expr_test``: the samples an expression returns at ``eval_time``.

Failures are reported in promtool's words so that output can be compared.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soulwatch.exceptions import ParseError, QueryError, SoulwatchError
from soulwatch.promql.values import QueryEngine
from soulwatch.rules.gofmt import format_float
from soulwatch.rules.group import Group, to_vector
from soulwatch.rules.loader import ExprValidator, load_rule_files
from soulwatch.rules.model import format_duration, parse_duration
from soulwatch.rules.series_notation import NotationError, parse_metric, parse_values
from soulwatch.tsdb.memory import MemoryStorage

#: Builds a query engine over a storage (the PromQL engine by default).
EngineFactory = Callable[[MemoryStorage], QueryEngine]


def default_engine_factory() -> EngineFactory:
    """soulwatch's PromQL engine (imported lazily)."""
    from soulwatch.promql.engine import Engine

    def factory(storage: MemoryStorage) -> QueryEngine:
        engine: QueryEngine = Engine(storage)
        return engine

    return factory


@dataclass
class TestFileResult:
    """The outcome of one test file: ``errors`` in promtool's wording, empty on success."""

    path: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every test passed."""
        return not self.errors

    def report(self) -> str:
        """What ``promtool test rules`` prints for this file."""
        head = f"Unit Testing:  {self.path}\n" + "".join(f"  WARNING: {w}\n" for w in self.warnings)
        if self.ok:
            return head + "  SUCCESS\n"
        return head + "  FAILED:\n" + "".join(f"{error}\n\n" for error in self.errors)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` (``2m0s``, ``1h0m0s``, ``1.5s``)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    ms = round(abs(seconds) * 1000)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = rest / 1000
    sec_text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{sign}{minutes}m{sec_text}"
    if ms < 1000:
        return f"{sign}{ms}ms"
    return sign + sec_text


def format_e(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'E', -1, 64)`` (``2E+00``, ``1.5E-01``)."""
    if math.isnan(value) or math.isinf(value):
        return format_float(value)
    if value == 0:
        return "0E+00"
    # Shortest round-trip digits, then Go's exponent spelling.
    mant, exp = _shortest_e(repr(abs(value)))
    return f"{'-' if value < 0 else ''}{mant}E{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _shortest_e(text: str) -> tuple[str, int]:
    if "e" in text:
        m, _, e = text.partition("e")
        digits = m.replace(".", "").rstrip("0") or "0"
        exp = int(e)
    else:
        whole, _, frac = text.partition(".")
        all_digits = (whole + frac).lstrip("0")
        lead = len(whole.lstrip("0"))
        exp = lead - 1 if lead else -(len(frac) - len(frac.lstrip("0")) + 1)
        digits = all_digits.rstrip("0") or "0"
    return digits[0] + ("." + digits[1:] if len(digits) > 1 else ""), exp


#: A label set as Go's ``labels.FromMap`` keeps it: sorted pairs, empty values included.
_Pairs = tuple[tuple[str, str], ...]


def _pairs(mapping: Mapping[str, str]) -> _Pairs:
    return tuple(sorted(mapping.items()))


def _labels_str(labels: _Pairs) -> str:
    inner = ", ".join(f'{n}="{v}"' for n, v in labels)
    return "{" + inner + "}"


def _alerts_str(items: list[tuple[_Pairs, _Pairs]]) -> str:
    if not items:
        return "[]"
    parts = []
    for i, (lbls, ann) in enumerate(items):
        body = f"Labels:{_labels_str(lbls)}\nAnnotations:{_labels_str(ann)}"
        parts.append(f"{i}:" + _indent("\n" + body, "  "))
    return "[\n" + ",\n".join(parts) + "\n]"


def _indent(text: str, prefix: str) -> str:
    return text.replace("\n", "\n" + prefix)


def _samples_str(items: list[tuple[_Pairs, float]]) -> str:
    if not items:
        return "nil"
    return ", ".join(f"{_labels_str(lbls)} {format_e(v)}" for lbls, v in items)


def _same_samples(a: list[tuple[_Pairs, float]], b: list[tuple[_Pairs, float]]) -> bool:
    # reflect.DeepEqual semantics: NaN never equals NaN.
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] for x, y in zip(a, b, strict=True)
    )


class _FileError(Exception):
    pass


def run_test_file(
    path: str | Path,
    *,
    engine_factory: EngineFactory | None = None,
    validate_expr: ExprValidator | None = None,
) -> TestFileResult:
    """Run every test of one promtool-format test file."""
    result = TestFileResult(str(path))
    factory = engine_factory or default_engine_factory()
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        result.errors.append(f"    {exc}")
        return result
    if not isinstance(doc, dict):
        result.errors.append(f"    {path}: a test file must be a mapping")
        return result
    base = Path(path).parent
    try:
        rule_files = _rule_files(base, doc.get("rule_files") or [], result.warnings)
        eval_interval = parse_duration(str(doc.get("evaluation_interval", "1m")))
        groups_order = list(doc.get("group_eval_order") or [])
    except (ValueError, _FileError) as exc:
        result.errors.append(f"    {exc}")
        return result
    for test in doc.get("tests") or []:
        try:
            result.errors.extend(
                _run_test(
                    test,
                    rule_files=rule_files,
                    eval_interval=eval_interval,
                    groups_order=groups_order,
                    factory=factory,
                    validate_expr=validate_expr,
                )
            )
        except SoulwatchError as exc:
            result.errors.append(f"    {exc}")
        except (_FileError, ValueError, NotationError) as exc:
            result.errors.append(f"    {exc}")
    return result


def _rule_files(base: Path, patterns: list[Any], warnings: list[str]) -> list[Path]:
    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(base / str(pattern))))
        if not matches:
            # promtool warns and goes on: tests of other files may still pass.
            warnings.append(f"no file match pattern {pattern}")
        out.extend(Path(m) for m in matches)
    return out


def _run_test(
    test: Mapping[str, Any],
    *,
    rule_files: list[Path],
    eval_interval: float,
    groups_order: list[str],
    factory: EngineFactory,
    validate_expr: ExprValidator | None,
) -> list[str]:
    interval = parse_duration(str(test.get("interval", format_duration(eval_interval))))
    external_labels = {str(k): str(v) for k, v in (test.get("external_labels") or {}).items()}
    external_url = str(test.get("external_url", ""))
    name = test.get("name")
    storage = MemoryStorage()
    for item in test.get("input_series") or []:
        labels = parse_metric(item["series"])
        for i, value in enumerate(parse_values(item.get("values", ""))):
            if value is not None:
                storage.add(labels, round(i * interval * 1000), value)
    engine = factory(storage)

    specs = load_rule_files(rule_files, validate_expr=validate_expr)
    groups = [
        Group(
            spec,
            default_interval_s=eval_interval,
            external_labels=external_labels,
            external_url=external_url,
        )
        for spec in specs
    ]
    if groups_order:
        rank = {g: i for i, g in enumerate(groups_order)}
        missing = [g.spec.name for g in groups if g.spec.name not in rank]
        if missing:
            raise _FileError(f"group_eval_order does not name groups {missing}")
        groups.sort(key=lambda g: rank[g.spec.name])

    alert_tests: dict[float, list[Mapping[str, Any]]] = {}
    for case in test.get("alert_rule_test") or []:
        t = parse_duration(str(case.get("eval_time", "0s")))
        alert_tests.setdefault(t, []).append(case)
    expr_tests = list(test.get("promql_expr_test") or [])
    eval_times = [
        *alert_tests,
        *(parse_duration(str(c.get("eval_time", "0s"))) for c in expr_tests),
    ]
    maxt = max(eval_times, default=0.0)
    pending_times = sorted(alert_tests)

    errors: list[str] = []
    prefix = f"    name: {name},\n" if name else ""
    step = 0
    curr = 0
    while step * eval_interval <= maxt + 1e-9:
        ts = round(step * eval_interval, 6)
        step += 1
        eval_errors = []
        for group in groups:
            for outcome in group.evaluate(ts, engine, storage):
                if outcome.error is not None:
                    eval_errors.append(
                        f"    rule: {outcome.rule.name}, time: {go_duration(ts)}, "
                        f"err: {outcome.error}"
                    )
        if eval_errors:
            return errors + eval_errors
        while curr < len(pending_times) and ts <= pending_times[curr] < ts + eval_interval:
            t = pending_times[curr]
            curr += 1
            got: dict[str, list[tuple[_Pairs, _Pairs]]] = {}
            for group in groups:
                for rule in group.rules:
                    if rule.alerting is None:
                        continue
                    got.setdefault(rule.name, []).extend(
                        (tuple(a.labels), _pairs(a.annotations)) for a in rule.alerting.firing()
                    )
            for case in alert_tests[t]:
                alertname = str(case.get("alertname", ""))
                exp = []
                for item in case.get("exp_alerts") or []:
                    lbls = {str(k): str(v) for k, v in (item.get("exp_labels") or {}).items()}
                    lbls["alertname"] = alertname
                    ann = {str(k): str(v) for k, v in (item.get("exp_annotations") or {}).items()}
                    exp.append((_pairs(lbls), _pairs(ann)))
                actual = sorted(got.get(alertname, []))
                exp.sort()
                if exp != actual:
                    errors.append(
                        f"{prefix}    alertname: {alertname}, time: {format_duration(t)}, \n"
                        f"        exp:{_indent(_alerts_str(exp), '            ')}, \n"
                        f"        got:{_indent(_alerts_str(actual), '            ')}"
                    )

    for case in expr_tests:
        expr = str(case.get("expr", ""))
        t = parse_duration(str(case.get("eval_time", "0s")))
        where = f'    expr: "{expr}", time: {format_duration(t)}'
        try:
            t_ms = round(t * 1000)
            got_samples = sorted(
                (tuple(s.labels), s.value) for s in to_vector(engine.instant(expr, t_ms), t_ms)
            )
        except ParseError as exc:
            errors.append(f"{where}, err: {exc}")
            continue
        except QueryError as exc:
            errors.append(f"{where}, err: {exc}")
            continue
        try:
            exp_samples = sorted(
                (
                    tuple(parse_metric(s["labels"])) if s.get("labels") else (),
                    float(s["value"]),
                )
                for s in case.get("exp_samples") or []
            )
        except NotationError as exc:
            errors.append(f"{where}, err: {exc}")
            continue
        if not _same_samples(exp_samples, got_samples):
            errors.append(
                f"{where},\n        exp: {_samples_str(exp_samples)}\n"
                f"        got: {_samples_str(got_samples)}"
            )
    return errors
