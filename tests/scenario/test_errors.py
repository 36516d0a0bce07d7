"""A malformed scenario is an error naming file:line:col, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from soulwatch.exceptions import ConfigError
from soulwatch.scenario import load_scenario
from tests.scenario.support import write

STEP = "  - at: 0s\n    samples: {up: '1x10'}\n"


def _error(tmp_path: Path, text: str, *, env: bool = True) -> ConfigError:
    path = write(tmp_path, text, env=env)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert info.value.file == str(path)
    return info.value


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err = _error(tmp_path, "config: @CONFIG@\ntimeline:\n  - at: 0s\n    expect: [\n", env=False)
    assert (err.line, err.column) == (5, 1)
    assert "invalid YAML" in str(err)
    assert str(err).startswith(f"{tmp_path / 'case.scenario.yml'}:5:1: ")


def test_unknown_key_in_a_step_suggests_the_right_one(tmp_path: Path) -> None:
    err = _error(
        tmp_path, "config: @CONFIG@\ntimeline:\n" + STEP + "  - at: 1m\n    expect_non: true\n"
    )
    assert (err.line, err.column) == (6, 5)
    assert "unknown setting 'expect_non'" in err.reason
    assert "did you mean 'expect_none'" in err.reason


def test_bad_duration(tmp_path: Path) -> None:
    err = _error(
        tmp_path, "config: @CONFIG@\ntimeline:\n  - at: 5 minutes\n    expect_none: true\n"
    )
    assert (err.line, err.column) == (3, 9)
    assert "not a valid duration" in err.reason


def test_steps_out_of_order(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n"
        "  - {at: 5m, expect_none: true}\n"
        "  - {at: 1m, expect_none: true}\n",
    )
    assert (err.line, err.column) == (4, 10)
    assert "time order" in err.reason


def test_bad_series_notation(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n  - at: 0s\n    samples:\n      'up{job=\"a\"}': '1 2 3x'\n"
        "  - {at: 1m, expect_none: true}\n",
    )
    assert (err.line, err.column) == (5, 22)
    assert "3x" in err.reason


def test_overlapping_samples_of_one_series(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n" + STEP + "  - at: 1m\n    samples: {up: '0x3'}\n"
        "  - {at: 5m, expect_none: true}\n",
    )
    assert (err.line, err.column) == (6, 15)
    assert "overlaps its samples of an earlier step (they end at 2m30s)" in err.reason


def test_unknown_heartbeat_check(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n  - at: 0s\n    ping: nightly-backup\n"
        "    expect_none: true\n",
    )
    assert (err.line, err.column) == (4, 11)
    assert "no heartbeat check named 'nightly-backup'" in err.reason
    assert "reddit-poller" in err.reason


def test_expire_of_an_unknown_silence(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n"
        "  - at: 0s\n    silence: {id: a, matchers: ['alertname=\"X\"'], duration: 1h}\n"
        "  - at: 1m\n    expire_silence: b\n    expect_none: true\n",
    )
    assert (err.line, err.column) == (6, 21)
    assert "no earlier silence with id 'b'" in err.reason


def test_bad_silence_matcher(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n"
        "  - at: 0s\n    silence:\n      matchers: ['alertname=']\n      duration: 1h\n"
        "    expect_none: true\n",
    )
    assert err.line == 5
    assert err.column is not None


def test_missing_config_file(tmp_path: Path) -> None:
    err = _error(tmp_path, "config: nowhere.yaml\ntimeline:\n  - {at: 0s, expect_none: true}\n")
    assert (err.line, err.column) == (1, 9)
    assert "config file not found" in err.reason


def test_a_scenario_without_any_check(tmp_path: Path) -> None:
    err = _error(tmp_path, "config: @CONFIG@\ntimeline:\n" + STEP)
    assert "at least one expect or expect_none" in err.reason


def test_an_error_in_an_inline_config_points_into_the_scenario(tmp_path: Path) -> None:
    text = (
        "name: inline\n"
        "config:\n"
        "  rule_files: [rules.yml]\n"
        "  alerting:\n"
        "    route: {receiver: team}\n"
        "    receivers:\n"
        "      - name: team\n"
        "        webhook_configs:\n"
        "          - {url: 'http://hooks.example/x', sendresolved: true}\n"
        "timeline:\n"
        "  - {at: 0s, expect_none: true}\n"
    )
    (tmp_path / "rules.yml").write_text("groups: []\n")
    err = _error(tmp_path, text)
    assert err.line == 9
    assert err.column is not None
    assert err.column > 10
    assert "sendresolved" in err.reason


def test_an_inline_rule_file_that_does_not_exist(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config:\n  rule_files: [rules/*.yml]\ntimeline:\n  - {at: 0s, expect_none: true}\n",
    )
    assert (err.line, err.column) == (2, 16)
    assert "matches no file" in err.reason


def test_an_unknown_receiver(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n  - at: 5m\n    expect:\n"
        "      - {receiver: pager, status: firing}\n",
    )
    assert (err.line, err.column) == (5, 20)
    known = "blackhole, chat, page, soulcaster, ticket"
    assert f"no receiver named 'pager' (known: {known})" in err.reason


def test_a_receiver_without_integrations(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n  - at: 5m\n    expect:\n"
        "      - {receiver: blackhole, status: firing, alertname: Watchdog}\n",
    )
    assert "receiver 'blackhole' has no integrations" in err.reason


def test_a_window_after_its_step(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        "config: @CONFIG@\ntimeline:\n  - at: 5m\n    expect:\n"
        "      - {receiver: page, status: firing, between: [6m, 7m]}\n",
    )
    assert err.line == 5
    assert "the window starts after this step (5m)" in err.reason


def test_a_configuration_without_routing(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("groups: []\n")
    err = _error(
        tmp_path, "config:\n  rule_files: [r.yml]\ntimeline:\n  - {at: 0s, expect_none: true}\n"
    )
    assert (err.line, err.column) == (2, 3)
    assert "no alerting section" in err.reason
