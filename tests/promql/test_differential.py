"""Differential test: soulwatch's PromQL engine against a real Prometheus.

Random counters (with resets), gauges (with gaps and a series that stops) and
classic histograms are written as OpenMetrics, backfilled into a TSDB with
``promtool tsdb create-blocks-from openmetrics`` and served by a real
``prometheus`` on 127.0.0.1; the same samples go into a MemoryStorage. A few
hundred generated queries are evaluated by both at the same instants and the
results must agree within float tolerance.

The Prometheus here is 2.x (Debian's 2.42); soulwatch follows 3.x. Where the
two differ the test is arranged so the difference cannot show, or the case is
left out (docs/conformance.md lists these):

- range windows and the lookback are left-open in 3.x (``(t-r, t]``) and
  left-closed in 2.x: every sample sits at ``.125`` s and every evaluation
  time, offset and ``@`` at ``.5`` s, so no sample is ever on a boundary, and
  subquery windows never start on one of their own (whole-second) steps;
- ``holt_winters`` (renamed ``double_exponential_smoothing``, experimental),
  ``sort_by_label``, ``limitk``/``limit_ratio``, ``histogram_fraction`` on
  classic buckets, ``mad_over_time`` etc. do not exist in 2.42: not generated;
- a regex ``.`` matches newlines only in 3.x: no label value has a newline;
- 3.x normalises ``le`` label values at scrape time: buckets are written
  with float-formatted bounds (``1.0``), which both keep verbatim here;
- 3.x sums with Kahan compensation: values also count as equal within an
  absolute 1e-9 where the exact result is near zero;
- ``rate``/``increase`` limit their extrapolation at the counter's zero
  point; 2.42 applied that limit to the full extrapolation interval, 2.51
  and later only to the interval actually used (prometheus#13725): counters
  here never come near zero (they start above 5000 and a reset drops them
  to at least 1000), so the limit never applies.
"""

from __future__ import annotations

import math
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult, Sample, Scalar, String
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Series
from tests.helpers import free_port, need_binary, started

pytestmark = pytest.mark.slow

SEED = 20261126
BASE_S = 1_699_999_200  # a multiple of 2 h, so promtool writes whole blocks
SCRAPE_S = 15
SAMPLES = 240  # one hour
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf")
QUERY_COUNT = 320
RANGE_QUERY_COUNT = 60  # the first queries with an instant-vector or scalar result
RANGE_STEPS = 12


@dataclass
class _Dataset:
    series: dict[Labels, list[tuple[int, float]]]


def _generate(rng: random.Random) -> _Dataset:
    """Counters with resets, gauges with gaps, classic histograms."""
    series: dict[Labels, list[tuple[int, float]]] = {}

    def at(i: int) -> int:
        # Jitter inside the scrape interval; always on .125 s (exact in binary).
        return (BASE_S + i * SCRAPE_S + rng.randint(0, 12)) * 1000 + 125

    for job in ("api", "worker"):
        for instance in ("a", "b", "c"):
            for code in ("200", "500"):
                labels = Labels.of(
                    __name__="sw_requests_total", job=job, instance=instance, code=code
                )
                # Counters stay far from zero, also after a reset: 2.42 limits
                # rate extrapolation at the zero point differently (see above).
                value, points = float(rng.randint(5000, 9000)), []
                for i in range(SAMPLES):
                    if rng.random() < 0.01 and value >= 2000:
                        value = float(rng.randint(1000, int(value) // 2))  # a counter reset
                    else:
                        value += rng.randint(0, 20 if code == "200" else 3)
                    points.append((at(i), value))
                series[labels] = points
        for instance in ("a", "b", "c"):
            labels = Labels.of(__name__="sw_temperature", job=job, instance=instance)
            value, points = rng.uniform(-5, 30), []
            stop = SAMPLES if instance != "c" else SAMPLES * 2 // 3
            for i in range(stop):
                value += rng.uniform(-1.5, 1.5)
                if rng.random() < 0.1:
                    continue  # a missed scrape
                points.append((at(i), round(value, 3)))
            series[labels] = points
        for instance in ("a", "b"):
            base = {"job": job, "instance": instance}
            counts = [0.0] * len(BUCKETS)
            total, points_by_name = 0.0, {}
            bucket_points: list[list[tuple[int, float]]] = [[] for _ in BUCKETS]
            count_points, sum_points = [], []
            for i in range(SAMPLES):
                t = at(i)
                for _ in range(rng.randint(0, 30)):
                    observed = rng.expovariate(1 / (0.3 if job == "api" else 0.8))
                    total += observed
                    for b, bound in enumerate(BUCKETS):
                        if observed <= float(bound):
                            counts[b] += 1
                for b in range(len(BUCKETS)):
                    bucket_points[b].append((t, counts[b]))
                count_points.append((t, counts[-1]))
                sum_points.append((t, round(total, 6)))
            for b, bound in enumerate(BUCKETS):
                labels = Labels.of(__name__="sw_latency_seconds_bucket", le=bound, **base)
                series[labels] = bucket_points[b]
            series[Labels.of(__name__="sw_latency_seconds_count", **base)] = count_points
            series[Labels.of(__name__="sw_latency_seconds_sum", **base)] = sum_points
            del points_by_name
    return _Dataset(series)


def _openmetrics(data: _Dataset) -> str:
    families = {
        "sw_requests": ("counter", ["sw_requests_total"]),
        "sw_temperature": ("gauge", ["sw_temperature"]),
        "sw_latency_seconds": (
            "histogram",
            ["sw_latency_seconds_bucket", "sw_latency_seconds_count", "sw_latency_seconds_sum"],
        ),
    }
    lines: list[str] = []
    for family, (kind, names) in families.items():
        lines.append(f"# TYPE {family} {kind}")
        members = [labels for labels in data.series if labels.name in names]
        if kind == "histogram":
            # A histogram's points are grouped per label set and time: buckets, count, sum.
            groups: dict[Labels, list[Labels]] = {}
            for labels in members:
                groups.setdefault(labels.without("__name__", "le"), []).append(labels)
            for group in groups.values():
                group.sort(key=lambda lb: (names.index(lb.name), _le_order(lb)))
                for i in range(SAMPLES):
                    for labels in group:
                        t, v = data.series[labels][i]
                        lines.append(_om_line(labels, t, v))
        else:
            for labels in members:
                lines.extend(_om_line(labels, t, v) for t, v in data.series[labels])
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _le_order(labels: Labels) -> float:
    le = labels.get("le")
    return float(le) if le else 0.0


def _om_line(labels: Labels, t_ms: int, value: float) -> str:
    pairs = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
    return f"{labels.name}{{{pairs}}} {value!r} {t_ms / 1000:.3f}"


def _queries(rng: random.Random) -> list[tuple[str, int]]:
    """Generated queries, each with an evaluation time (ms, always on .5 s)."""
    counters = [
        "sw_requests_total",
        'sw_requests_total{code="500"}',
        'sw_requests_total{job=~"api|work.*",code!="500"}',
        'sw_requests_total{instance!~"a|b"}',
    ]
    gauges = ["sw_temperature", 'sw_temperature{job="api"}', 'sw_temperature{instance=~"b|c"}']
    ranges = ["1m", "2m", "5m", "10m", "90s"]
    ops = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
    groupings = ["", " by (job)", " without (instance)", " by (job, code)", " by ()"]
    counter_funcs = ["rate", "irate", "increase", "resets", "changes"]
    gauge_funcs = [
        "delta", "idelta", "deriv", "avg_over_time", "min_over_time", "max_over_time",
        "sum_over_time", "count_over_time", "last_over_time", "present_over_time",
        "stddev_over_time", "stdvar_over_time", "changes", "resets",
    ]  # fmt: skip
    math_funcs = [
        "abs", "ceil", "floor", "sqrt", "ln", "log2", "log10", "exp", "sgn",
        "sin", "cos", "atan", "deg", "rad", "tanh",
    ]  # fmt: skip

    absent_args = ["nope", "sw_temperature", 'sw_temperature{job="x"}']

    def c() -> str:
        return rng.choice(counters)

    def g() -> str:
        return rng.choice(gauges)

    def r() -> str:
        return rng.choice(ranges)

    def rate_expr() -> str:
        return f"{rng.choice(counter_funcs)}({c()}[{r()}])"

    templates = [
        c,
        g,
        lambda: f"{c()} offset {rng.choice(['1m', '5m', '17m'])}",
        lambda: f"{g()} @ {BASE_S + rng.randint(600, 3000)}.5",
        rate_expr,
        lambda: f"{rng.choice(gauge_funcs)}({g()}[{r()}])",
        lambda: f"quantile_over_time({rng.choice(['0', '0.25', '0.5', '0.9', '1'])}, {g()}[{r()}])",
        lambda: f"predict_linear({g()}[{r()}], {rng.choice(['60', '600', '3600'])})",
        lambda: f"{rng.choice(ops)}{rng.choice(groupings)} ({rate_expr()})",
        lambda: f"{rng.choice(ops)}({g()}){rng.choice(groupings)}",
        lambda: f"{rng.choice(['topk', 'bottomk'])}({rng.randint(1, 4)}, {g()})",
        lambda: f"quantile{rng.choice(groupings)} ({rng.choice(['0.1', '0.5', '0.99'])}, {g()})",
        lambda: f'count_values("v", floor({g()}))',
        lambda: f"{rng.choice(math_funcs)}({g()})",
        lambda: f"round({g()}, {rng.choice(['1', '0.5', '5'])})",
        lambda: f"clamp({g()}, {rng.randint(-5, 5)}, {rng.randint(5, 25)})",
        lambda: f"clamp_min({g()}, 10) + clamp_max({g()}, 10)",
        lambda: (
            f"{g()} {rng.choice(['+', '-', '*', '/', '%', '^'])} {rng.choice(['2', '-3', '0.5'])}"
        ),
        lambda: f"{rng.choice(['2', '100'])} {rng.choice(['-', '/', '%'])} {g()}",
        lambda: f"{g()} {rng.choice(['>', '<', '>=', '<=', '==', '!='])} {rng.randint(0, 20)}",
        lambda: f"{g()} {rng.choice(['>', '<'])} bool {rng.randint(0, 20)}",
        lambda: (
            f"{rate_expr()} {rng.choice(['+', '/', '>'])} on(job, instance, code) {rate_expr()}"
        ),
        lambda: f"sum by (job, instance) ({rate_expr()}) / on(job, instance) group_left {g()}",
        lambda: f"{g()} * on(job, instance) group_right sum by (job, instance, code) ({c()})",
        lambda: f"{c()} {rng.choice(['and', 'or', 'unless'])} {g()}",
        lambda: f"{c()} {rng.choice(['and', 'unless'])} on(job) {g()} > 10",
        lambda: f"{g()} {rng.choice(['and', 'or', 'unless'])} ignoring(instance) {g()}",
        lambda: (
            f"histogram_quantile({rng.choice(['0.5', '0.9', '0.99', '0', '1'])}, "
            f"sum by (le{rng.choice(['', ', job'])}) (rate(sw_latency_seconds_bucket[{r()}])))"
        ),
        lambda: f"histogram_quantile(0.9, rate(sw_latency_seconds_bucket[{r()}]))",
        lambda: f"rate(sw_latency_seconds_sum[{r()}]) / rate(sw_latency_seconds_count[{r()}])",
        lambda: (
            f"max_over_time({rate_expr()}"
            f"[{rng.choice(['5m', '10m'])}:{rng.choice(['', '1m', '30s'])}])"
        ),
        lambda: (
            f"avg_over_time({g()}[{rng.choice(['10m', '7m'])}:{rng.choice(['', '1m', '15s'])}])"
        ),
        lambda: f"timestamp({g()})",
        lambda: f"{rng.choice(['hour', 'minute', 'day_of_week', 'month', 'days_in_month'])}()",
        lambda: f"minute(timestamp({g()}))",
        lambda: f"scalar(sum({g()})) * {rng.choice(['2', 'time()'])}",
        lambda: f"vector(time()) - {rng.randint(0, 9)}",
        lambda: f"absent({rng.choice(absent_args)})",
        lambda: f"absent_over_time({g()}[{r()}])",
        lambda: f'label_replace({g()}, "host", "$1-x", "instance", "(.*)")',
        lambda: f'label_join({c()}, "key", ":", "job", "instance", "code")',
        lambda: f"sort_desc({rate_expr()})",
        lambda: f"-{g()} + -{rng.randint(1, 9)} ^ 2",
        lambda: f"{c()}[{rng.choice(['1m', '2m'])}]",
        lambda: f"sum by (job) (increase({c()}[{r()}] offset {rng.choice(['5m', '-2m'])}))",
        lambda: f"rate({c()}[5m] @ {BASE_S + rng.randint(900, 3300)}.5)",
        lambda: f"sgn({g()}) atan2 {g()}",
        lambda: f"1 + 2 * 3 ^ 2 ^ 0.5 {rng.choice(['>', '=='])} bool 5",
    ]
    queries = []
    for _ in range(QUERY_COUNT):
        template = rng.choice(templates)
        # Evaluation times on .5 s, from 20 min in to 2 min after the last sample.
        t_ms = (BASE_S + rng.randint(1200, SAMPLES * SCRAPE_S + 120)) * 1000 + 500
        queries.append((template(), t_ms))
    return queries


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= 1e-9 or abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def _theirs(payload: dict[str, Any]) -> tuple[str, dict[Labels, Any]]:
    data = payload["data"]
    kind = data["resultType"]
    if kind in ("scalar", "string"):
        t, v = data["result"]
        return kind, {Labels(): (round(float(t) * 1000), v if kind == "string" else float(v))}
    if kind == "vector":
        return kind, {
            Labels.of(item["metric"]): (
                round(float(item["value"][0]) * 1000),
                float(item["value"][1]),
            )
            for item in data["result"]
        }
    return kind, {
        Labels.of(item["metric"]): [(round(float(t) * 1000), float(v)) for t, v in item["values"]]
        for item in data["result"]
    }


def _ours(result: QueryResult, *, force_matrix: bool = False) -> tuple[str, dict[Labels, Any]]:
    value = result.value
    if force_matrix:  # a range query's result, even when empty
        return "matrix", {s.labels: list(s) for s in value if isinstance(s, Series)}
    if isinstance(value, Scalar):
        return "scalar", {Labels(): (value.t_ms, value.value)}
    if isinstance(value, String):
        return "string", {Labels(): (value.t_ms, value.value)}
    if result.result_type == "matrix":
        return "matrix", {s.labels: list(s) for s in value if isinstance(s, Series)}
    return "vector", {s.labels: (s.t_ms, s.value) for s in value if isinstance(s, Sample)}


def _differences(ours: tuple[str, dict[Labels, Any]], theirs: tuple[str, dict[Labels, Any]]) -> str:
    if ours[0] != theirs[0] and (ours[1] or theirs[1]):
        return f"result type {ours[0]} vs {theirs[0]}"
    mine, other = ours[1], theirs[1]
    if set(mine) != set(other):
        only_mine = [str(k) for k in set(mine) - set(other)][:3]
        only_theirs = [str(k) for k in set(other) - set(mine)][:3]
        return f"series differ: only soulwatch {only_mine}, only Prometheus {only_theirs}"
    for labels, value in mine.items():
        expected = other[labels]
        if isinstance(value, list):
            if len(value) != len(expected) or any(
                t1 != t2 or not _close(v1, v2)
                for (t1, v1), (t2, v2) in zip(value, expected, strict=True)
            ):
                return f"{labels}: {value[:4]}... vs {expected[:4]}..."
        elif value[0] != expected[0] or (
            not _close(value[1], expected[1])
            if isinstance(value[1], float)
            else value[1] != expected[1]
        ):
            return f"{labels}: {value} vs {expected}"
    return ""


def _compare_range(engine: Engine, client: httpx.Client, query: str, end_ms: int) -> str:
    """The same query as a range query ending at ``end_ms``, one-minute steps."""
    start_ms = end_ms - (RANGE_STEPS - 1) * 60_000
    response = client.get(
        "/api/v1/query_range",
        params={
            "query": query,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
            "step": "60",
        },
    )
    payload = response.json()
    if payload["status"] != "success":
        return f"Prometheus error {payload.get('error')}"
    ours = engine.range(query, start_ms, end_ms, 60_000)
    return _differences(_ours(ours, force_matrix=True), _theirs(payload))


def test_engine_agrees_with_prometheus(tmp_path: Path) -> None:
    prometheus = need_binary("prometheus")
    promtool = need_binary("promtool")
    rng = random.Random(SEED)
    data = _generate(rng)
    queries = _queries(rng)

    source = tmp_path / "data.om.txt"
    source.write_text(_openmetrics(data), encoding="utf-8")
    tsdb = tmp_path / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(tsdb)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    storage = MemoryStorage()
    for labels, points in data.series.items():
        for t_ms, value in points:
            storage.add(labels, t_ms, value)
    engine = Engine(storage)

    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1m\n", encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=100y",
    ]
    with (
        started(argv, ready=lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        # The data must really be there: every generated series, at a known time.
        loaded = client.get(
            "/api/v1/query",
            params={"query": "count({__name__=~'sw_.+'})", "time": f"{BASE_S + 1800}.5"},
        ).json()
        assert float(loaded["data"]["result"][0]["value"][1]) == len(data.series)
        mismatches: list[str] = []
        range_checked: list[str] = []
        compared = 0
        for query, t_ms in queries:
            response = client.get(
                "/api/v1/query", params={"query": query, "time": f"{t_ms / 1000:.3f}"}
            )
            payload = response.json()
            try:
                ours = engine.instant(query, t_ms)
            except Exception as exc:  # reported with the query, not as a crash of the test
                if payload["status"] == "error":
                    compared += 1
                    continue
                mismatches.append(f"{query} @ {t_ms}: soulwatch error {exc!r}")
                continue
            if payload["status"] != "success":
                mismatches.append(f"{query} @ {t_ms}: Prometheus error {payload.get('error')}")
                continue
            compared += 1
            difference = _differences(_ours(ours), _theirs(payload))
            if difference:
                mismatches.append(f"{query} @ {t_ms / 1000:.1f}: {difference}")
            if len(range_checked) < RANGE_QUERY_COUNT and ours.result_type in ("vector", "scalar"):
                range_checked.append(query)
                difference = _compare_range(engine, client, query, t_ms)
                if difference:
                    mismatches.append(f"range {query} to {t_ms / 1000:.1f}: {difference}")
    assert compared >= QUERY_COUNT * 0.9
    assert len(range_checked) == RANGE_QUERY_COUNT
    assert not mismatches, f"{len(mismatches)} of {len(queries)} queries differ:\n" + "\n".join(
        mismatches
    )
