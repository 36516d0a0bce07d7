"""soulwatch's opt-in rule extensions: recover_expr (hysteresis) and the no-data policy."""

from __future__ import annotations

from pathlib import Path

from soulwatch.alerts import AlertState
from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.loader import check_rule_file
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.rules.support import RecordingSink, write

START = 1_700_000_000.0
ERRORS = Labels.of(__name__="error_ratio", job="api")


async def _run(
    tmp_path: Path, clock: SimulatedClock, rule: str, values: list[float | None]
) -> list[set[AlertState]]:
    """Evaluate once a minute over per-minute values (None = no sample); states per minute."""
    storage = MemoryStorage()
    for i, v in enumerate(values):
        if v is not None:
            storage.add(ERRORS, round((START + 60 * i) * 1000), v)
    manager = RuleManager(
        engine=Engine(storage, clock=clock, lookback_delta_ms=60_000),
        storage=storage,
        sink=RecordingSink(clock),
        clock=clock,
    )
    manager.load([write(tmp_path / "rules.yml", rule)])
    out = []
    for i in range(len(values)):
        clock.set_time(START + 60 * i)
        await manager.evaluate_group(manager._groups[0], clock.time())
        out.append({a.state for a in manager.active_alerts()})
    return out


HYSTERESIS = """
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Errors
        expr: error_ratio > 0.05
        recover_expr: error_ratio > 0.03
"""

FIRING = {AlertState.FIRING}


async def test_without_recover_expr_a_hovering_value_flaps(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    rule = HYSTERESIS.replace("        recover_expr: error_ratio > 0.03\n", "")
    states = await _run(tmp_path, clock, rule, [0.06, 0.049, 0.051, 0.049, 0.051, 0.02])
    assert states == [FIRING, set(), FIRING, set(), FIRING, set()]


async def test_recover_expr_holds_the_alert_until_the_lower_threshold(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    states = await _run(tmp_path, clock, HYSTERESIS, [0.06, 0.049, 0.051, 0.049, 0.04, 0.02, 0.04])
    # Fires above 5%, stays firing between 3% and 5%, resolves at 2%, and
    # does not fire again at 4% (below the firing threshold).
    assert states == [FIRING, FIRING, FIRING, FIRING, FIRING, set(), set()]


async def test_recover_expr_resolves_when_the_input_vanishes(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    states = await _run(tmp_path, clock, HYSTERESIS, [0.06, 0.04, None, None])
    assert states == [FIRING, FIRING, set(), set()]


NO_DATA = """
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Errors
        expr: error_ratio > 0.05
        for: 2m
        no_data: {policy}
"""


async def test_no_data_ok_resolves_like_prometheus(tmp_path: Path, clock: SimulatedClock) -> None:
    states = await _run(
        tmp_path, clock, NO_DATA.format(policy="ok"), [0.1, 0.1, 0.1, None, None, None]
    )
    assert states == [{AlertState.PENDING}, {AlertState.PENDING}, FIRING, set(), set(), set()]


async def test_no_data_keep_last_keeps_the_alert_firing(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    states = await _run(
        tmp_path, clock, NO_DATA.format(policy="keep_last"), [0.1, 0.1, 0.1, None, None, 0.01]
    )
    assert states == [{AlertState.PENDING}, {AlertState.PENDING}, FIRING, FIRING, FIRING, set()]


async def test_no_data_alerting_raises_a_nodata_alert_after_for(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage_values: list[float | None] = [0.01, None, None, None, 0.01]
    states = await _run(tmp_path, clock, NO_DATA.format(policy="alerting"), storage_values)
    assert states == [set(), {AlertState.PENDING}, {AlertState.PENDING}, FIRING, set()]


def test_extensions_are_reported_as_soulwatch_only(tmp_path: Path) -> None:
    groups, problems = check_rule_file(write(tmp_path / "r.yml", HYSTERESIS))
    assert problems == []
    assert groups[0].rules[0].uses_extensions
    _, problems = check_rule_file(write(tmp_path / "bad.yml", NO_DATA.format(policy="maybe")))
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'bad.yml'}:9:18: no_data must be one of ok|alerting|keep_last, not 'maybe'"
    ]
