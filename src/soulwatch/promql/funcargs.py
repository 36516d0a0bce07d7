"""Argument helpers shared by the function modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from soulwatch.exceptions import QueryError
from soulwatch.promql.ast import Call
from soulwatch.promql.stepvec import ScalarSteps, StepSeries, StepValue, StringValue

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator

#: ``handler(evaluator, call, step_times) -> value``
Handler = Callable[["Evaluator", Call, list[int]], StepValue]


def vector_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> list[StepSeries]:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, list):
        raise QueryError(f"expected an instant vector argument to {node.func}()")
    return value


def scalar_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> list[float]:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, ScalarSteps):
        raise QueryError(f"expected a scalar argument to {node.func}()")
    return value.vals


def string_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> str:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, StringValue):
        raise QueryError(f"expected a string argument to {node.func}()")
    return value.value


def map_values(
    vec: list[StepSeries], fn: Callable[[float], float], *, drop_name: bool = True
) -> list[StepSeries]:
    return [
        StepSeries(
            s.labels, [None if v is None else fn(v) for v in s.vals], s.drop_name or drop_name
        )
        for s in vec
    ]
