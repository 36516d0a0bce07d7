"""Loading alertmanager.yml: line-precise errors, did-you-mean, secrets."""

from __future__ import annotations

import pytest

from soulwatch.alerting.config import load_config, parse_config, read_secret
from soulwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from soulwatch.duration import parse_duration
from soulwatch.exceptions import ConfigError
from soulwatch.tsdb.model import MatchType

BASE = """\
route:
  receiver: a
receivers:
  - name: a
"""


def _error(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_config(text, file="am.yml", env=env or {})
    return err.value


def test_unknown_key_names_line_and_suggests():
    err = _error("route:\n  receiver: a\n  group_wiat: 1m\nreceivers:\n  - name: a\n")
    assert (err.file, err.line, err.column) == ("am.yml", 3, 3)
    assert 'did you mean "group_wait"' in str(err)


def test_unknown_key_in_receiver_integration():
    err = _error(BASE + "    slack_configs:\n      - api_url: http://x\n        chanel: '#a'\n")
    assert err.line == 7
    assert 'did you mean "channel"' in str(err)


def test_bad_duration_points_at_value():
    err = _error("route:\n  receiver: a\n  group_wait: soon\nreceivers:\n  - name: a\n")
    assert err.line == 3
    assert 'route.group_wait: not a valid duration string: "soon"' in str(err)


def test_undefined_receiver_and_bad_matcher():
    text = (
        "route:\n  receiver: a\n  routes:\n    - receiver: bb\n"
        "receivers:\n  - name: a\n  - name: b\n"
    )
    err = _error(text)
    assert err.line == 4
    assert "undefined receiver" in str(err)
    assert 'did you mean "b"' in str(err)
    text = (
        "route:\n  receiver: a\n  routes:\n    - matchers: ['x=~\"(\"']\nreceivers:\n  - name: a\n"
    )
    assert _error(text).line == 4


def test_invalid_yaml_has_position():
    err = _error("route:\n  receiver: [a\n")
    assert err.line is not None
    assert "invalid YAML" in str(err)


def test_root_route_rules():
    assert "root route must have a receiver" in str(_error("route: {}\nreceivers: []\n"))
    err = _error("route:\n  receiver: a\n  matchers: [x=y]\nreceivers:\n  - name: a\n")
    assert "must not have any matchers" in str(err)


def test_group_by_dots_must_be_alone():
    err = _error("route:\n  receiver: a\n  group_by: ['...', x]\nreceivers:\n  - name: a\n")
    assert "'...' must be the only element" in str(err)


def test_env_and_file_secrets(tmp_path):
    text = BASE + "    slack_configs:\n      - api_url: ${SLACK_URL}\n"
    config = parse_config(text, env={"SLACK_URL": "https://hooks.slack.com/services/x"})
    assert config.receivers[0].slack_configs[0].api_url == "https://hooks.slack.com/services/x"
    err = _error(text)
    assert err.line == 6
    assert "SLACK_URL is not set" in str(err)
    (tmp_path / "key").write_text("pd-key\n")
    path = tmp_path / "am.yml"
    path.write_text(BASE + "    pagerduty_configs:\n      - routing_key_file: key\n")
    config = load_config(path, env={})
    pd = config.receivers[0].pagerduty_configs[0]
    assert (
        read_secret(pd.routing_key, pd.routing_key_file, base_dir=config.base_dir, what="k")
        == "pd-key"
    )
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(None, "missing", base_dir=tmp_path, what="routing_key")


def test_durations():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("0s") == 0
    assert parse_duration("1d") == 86400
    assert parse_duration("250ms") == 0.25
    for bad in ("", "m", "1x", "-1m"):
        with pytest.raises(ValueError, match="duration string"):
            parse_duration(bad)


def test_matcher_syntax():
    ms = parse_matchers('{alertname="Foo", env=~"prod|stage", team!=db, x!~"a.*"}')
    assert [(m.name, m.type, m.value) for m in ms] == [
        ("alertname", MatchType.EQUAL, "Foo"),
        ("env", MatchType.REGEX, "prod|stage"),
        ("team", MatchType.NOT_EQUAL, "db"),
        ("x", MatchType.NOT_REGEX, "a.*"),
    ]
    (m,) = parse_matchers(r'msg="say \"hi\", ok"')
    assert m.value == 'say "hi", ok'
    assert parse_matchers("severity = page")[0].value == "page"
    assert parse_matchers('env=~"prod|stage"')[0].matches("stage")
    assert not parse_matchers('env=~"prod"')[0].matches("production"), "regexes are anchored"
    with pytest.raises(MatcherSyntaxError, match="position"):
        parse_matchers("alertname")
    with pytest.raises(MatcherSyntaxError, match="unterminated"):
        parse_matchers('a="b')
