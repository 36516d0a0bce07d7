"""Classic-histogram functions: ``histogram_quantile`` and ``histogram_fraction``.

Buckets are the series of a group that differ only in ``le``. As in
Prometheus, buckets with the same bound are merged, counts that decrease are
forced up to monotonic (reported as an info), and differences within a
relative 1e-12 are treated as floating-point noise.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

from soulwatch.promql.stepvec import StepSeries, drop_labels
from soulwatch.tsdb.model import Labels

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator

SMALL_DELTA_TOLERANCE = 1e-12
_LE = frozenset({"le"})
#: The smallest normal float64: below it, counts are compared by absolute difference.
MIN_NORMAL = 2.2250738585072014e-308

Bucket = list[float]  # [upper_bound, count]


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < MIN_NORMAL:
        return diff < epsilon * MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


def _prepare(buckets: list[Bucket]) -> tuple[list[Bucket], bool] | None:
    """Sort, merge equal bounds and force monotonic counts; ``None`` if unusable."""
    buckets.sort(key=lambda b: b[0])
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return None
    merged: list[Bucket] = []
    for b in buckets:
        if merged and merged[-1][0] == b[0]:
            merged[-1][1] += b[1]
        else:
            merged.append([b[0], b[1]])
    forced = False
    prev = merged[0][1]
    for b in merged[1:]:
        curr = b[1]
        if curr == prev:
            continue
        if _almost_equal(prev, curr, SMALL_DELTA_TOLERANCE):
            b[1] = prev
            continue
        if curr < prev:
            b[1] = prev
            forced = True
            continue
        prev = curr
    return merged, forced


def bucket_quantile(q: float, buckets: list[Bucket]) -> tuple[float, bool]:
    """The φ-quantile of classic buckets and whether monotonicity had to be forced."""
    if math.isnan(q):
        return math.nan, False
    if q < 0:
        return -math.inf, False
    if q > 1:
        return math.inf, False
    prepared = _prepare(buckets)
    if prepared is None:
        return math.nan, False
    merged, forced = prepared
    if len(merged) < 2:
        return math.nan, forced
    observations = merged[-1][1]
    if observations == 0:
        return math.nan, forced
    rank = q * observations
    b = len(merged) - 1
    for i in range(len(merged) - 1):
        if merged[i][1] >= rank:
            b = i
            break
    if b == len(merged) - 1:
        return merged[-2][0], forced
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0], forced
    start = 0.0
    end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * _go_div(rank, count), forced


def _go_div(a: float, b: float) -> float:
    """``a / b`` as Go's floats divide: by zero gives ±Inf, or NaN for 0/0 (q = 0)."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def format_openmetrics_float(value: float) -> str:
    """A float as Prometheus writes it in a label: Go's shortest ``%g``, with ``.0`` if integral."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    exp = len(text) + exponent - 1  # the decimal exponent of the first digit
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:  # strconv.FormatFloat(f, "g", -1, 64)
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exponent >= 0:
        return f"{prefix}{text}{'0' * exponent}.0"
    point = len(text) + exponent
    if point > 0:
        return f"{prefix}{text[:point]}.{text[point:]}"
    return f"{prefix}0.{'0' * -point}{text}"


def _interpolate(v: float, rank: float, low: float, up: float, count: float) -> float:
    # Observations in an open-ended bucket are assumed to sit at its finite bound.
    if math.isinf(low) or math.isinf(up):
        return rank if math.isinf(up) else count
    return rank + (count - rank) * (v - low) / (up - low)


def bucket_fraction(lower: float, upper: float, buckets: list[Bucket]) -> float:
    """The estimated fraction of observations between ``lower`` and ``upper``."""
    prepared = _prepare(buckets)
    if prepared is None:
        return math.nan
    merged, _ = prepared
    total = merged[-1][1]
    if total == 0 or math.isnan(lower) or math.isnan(upper):
        return math.nan
    if lower >= upper:
        return 0.0
    rank = 0.0
    lower_rank = upper_rank = 0.0
    lower_set = upper_set = False
    for i, (bound, count) in enumerate(merged):
        low_bound = merged[i - 1][0] if i > 0 else (0.0 if bound > 0 else -math.inf)

        if not lower_set and low_bound >= lower:
            lower_rank, lower_set = rank, True
        if not upper_set and low_bound >= upper:
            upper_rank, upper_set = rank, True
        if lower_set and upper_set:
            break
        if not lower_set and low_bound < lower < bound:
            lower_rank, lower_set = _interpolate(lower, rank, low_bound, bound, count), True
        if not upper_set and low_bound < upper < bound:
            upper_rank, upper_set = _interpolate(upper, rank, low_bound, bound, count), True
        if lower_set and upper_set:
            break
        rank = count
    if not lower_set or lower_rank > total:
        lower_rank = total
    if not upper_set or upper_rank > total:
        upper_rank = total
    return (upper_rank - lower_rank) / total


def bucket_groups(
    ev: Evaluator, vec: list[StepSeries], pos: int
) -> dict[Labels, list[tuple[float, StepSeries]]]:
    """The series of ``vec`` by histogram (labels without ``le``), each with its bound.

    A series whose ``le`` is missing or not a number is left out with a warning.
    """
    groups: dict[Labels, list[tuple[float, StepSeries]]] = {}
    for s in vec:
        text = s.labels.get("le")
        try:
            bound = float(text) if text else math.nan
        except ValueError:
            bound = math.nan
        if math.isnan(bound):
            ev.annotations.warn(
                f'bucket label "le" is missing or has a malformed value of "{text}" '
                f'for metric name "{s.labels.name}"',
                pos,
            )
            continue
        # As in Prometheus the name is part of the group: two histograms whose
        # other labels agree are two results, which then collide once the name
        # is dropped ("vector cannot contain metrics with the same labelset").
        key = drop_labels(s.labels, _LE)
        groups.setdefault(key, []).append((bound, s))
    return groups


def monotonicity_info(ev: Evaluator, members: list[tuple[float, StepSeries]], pos: int) -> None:
    """Report that a histogram's counts had to be forced up to monotonic."""
    ev.annotations.info(
        "input to histogram_quantile needed to be fixed for monotonicity "
        "(see https://prometheus.io/docs/prometheus/latest/querying/functions/"
        f'#histogram_quantile) for metric name "{members[0][1].labels.name}"',
        pos,
    )


def quantile_group(
    ev: Evaluator, qs: list[float], members: list[tuple[float, StepSeries]], pos: int
) -> list[float | None]:
    """One histogram's ``histogram_quantile``, step by step (``None``: no bucket at that step)."""
    vals: list[float | None] = []
    for i, q in enumerate(qs):
        buckets = [[bound, v] for bound, s in members if (v := s.vals[i]) is not None]
        if not buckets:
            vals.append(None)
            continue
        value, forced = bucket_quantile(q, buckets)
        if forced:
            monotonicity_info(ev, members, pos)
        vals.append(value)
    return vals


def fraction_group(
    lower: list[float], upper: list[float], members: list[tuple[float, StepSeries]]
) -> list[float | None]:
    """One histogram's ``histogram_fraction``, step by step (``None``: no bucket at that step)."""
    vals: list[float | None] = []
    for i in range(len(lower)):
        buckets = [[bound, v] for bound, s in members if (v := s.vals[i]) is not None]
        vals.append(bucket_fraction(lower[i], upper[i], buckets) if buckets else None)
    return vals


def quantile_over_buckets(
    ev: Evaluator, qs: list[float], vec: list[StepSeries], pos: int
) -> list[StepSeries]:
    """``histogram_quantile`` over classic bucket series, step by step."""
    out = []
    for labels, members in bucket_groups(ev, vec, pos).items():
        vals = quantile_group(ev, qs, members, pos)
        if any(v is not None for v in vals):
            out.append(StepSeries(labels, vals, True))
    return out


def fraction_over_buckets(
    ev: Evaluator, lower: list[float], upper: list[float], vec: list[StepSeries], pos: int
) -> list[StepSeries]:
    """``histogram_fraction`` over classic bucket series, step by step."""
    out = []
    for labels, members in bucket_groups(ev, vec, pos).items():
        vals = fraction_group(lower, upper, members)
        if any(v is not None for v in vals):
            out.append(StepSeries(labels, vals, True))
    return out
