"""Bad input in soulwatch.yaml and alertmanager.yml: each case, with the message a user reads.

Every case here was accepted, or failed with a misleading message, before:
an alias bomb, duplicate keys, unparseable receiver URLs, a typo in a
matcher, durations without a unit, secrets reported one run at a time, a
``global.scrape_interval`` under ten seconds.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from soulwatch.alerting.config import load_config as load_alertmanager
from soulwatch.config import load_config, parse_config
from soulwatch.exceptions import ConfigError

ROUTING = """\
alerting:
  route: {receiver: page}
  receivers:
    - name: page
      webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
"""


def _error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "soulwatch.yaml", environ or {})
    return str(err.value)


def test_an_alias_bomb_is_refused_quickly_and_without_memory() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    text = "\n".join(lines) + "\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = _error(text)
    assert message.startswith("soulwatch.yaml:")
    assert "aliases expand to more than 100000 values (excessive aliasing)" in message
    # 9**9 strings would be gigabytes; the check walks each distinct node once.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_an_alias_bomb_in_an_alertmanager_yml_is_refused(tmp_path: Path) -> None:
    lines = ["x0: &x0 [1,1,1,1,1,1,1,1,1,1]"]
    lines += [f"x{i}: &x{i} [{','.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "alertmanager.yml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="excessive aliasing"):
        load_alertmanager(path)


@pytest.mark.parametrize("depth", [150, 5000])
def test_deep_nesting_is_refused_not_a_crash(depth: int) -> None:
    message = _error("a: " + "[" * depth + "]" * depth + "\n")
    assert message.startswith("soulwatch.yaml")
    assert message.endswith("invalid YAML: nested more than 100 levels deep")


def test_a_few_aliases_still_work() -> None:
    text = (
        "scrape_configs:\n"
        "  - job_name: a\n    static_configs: &targets [{targets: ['127.0.0.1:1']}]\n"
        "  - job_name: b\n    static_configs: *targets\n"
    )
    cfg = parse_config(text, environ={})
    assert [j.static_configs[0].targets for j in cfg.scrape_configs] == [["127.0.0.1:1"]] * 2


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = ROUTING + "  receivers:\n    - name: other\n"
    assert _error(text) == ("soulwatch.yaml:6:3: duplicate key 'receivers' (first at line 3)")


def test_duplicate_top_level_section_is_refused() -> None:
    text = "listen: 127.0.0.1:1\nstorage: {}\nlisten: 127.0.0.1:2\n"
    assert _error(text) == "soulwatch.yaml:3:1: duplicate key 'listen' (first at line 1)"


def test_a_receiver_url_that_is_not_a_url_is_refused() -> None:
    text = ROUTING.replace("http://127.0.0.1:9/hook", "ht!tp://x y")
    message = _error(text)
    assert message.startswith("soulwatch.yaml:5:")
    assert "alerting.receivers.0.webhook_configs.0.url: not a valid URL" in message
    assert "whitespace" in message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example/x", "unsupported scheme 'ftp'"),
        ("https:///path-only", "it has no host"),
        ("http://h.example:port/x", "Port could not be cast"),
    ],
)
def test_receiver_urls_are_checked_in_alertmanager_yml(tmp_path: Path, url: str, why: str) -> None:
    path = tmp_path / "am.yml"
    path.write_text(
        f"route: {{receiver: chat}}\nreceivers:\n  - name: chat\n"
        f"    slack_configs: [{{api_url: '{url}'}}]\n"
    )
    with pytest.raises(ConfigError, match="not a valid URL") as err:
        load_alertmanager(path)
    assert why in str(err.value)
    assert str(err.value).startswith(f"{path}:4:")


def test_external_url_must_be_absolute() -> None:
    assert _error("external_url: soulwatch.internal:9797\n") == (
        "soulwatch.yaml:1:15: external_url: not a valid URL: 'soulwatch.internal:9797' "
        "(unsupported scheme 'soulwatch.internal'; use http or https)"
    )
    cfg = parse_config("external_url: https://sw.example/\n", environ={})
    assert cfg.external_url == "https://sw.example/"


def test_a_doubled_equals_in_a_matcher_is_refused() -> None:
    text = ROUTING.replace(
        "  route: {receiver: page}",
        "  route:\n    receiver: page\n    routes:\n      - matchers: ['foo==bar']\n"
        "        receiver: page",
    )
    message = _error(text)
    assert message.startswith("soulwatch.yaml:")
    assert "unexpected '=' in the unquoted value '=bar' of 'foo'" in message
    assert 'foo="=bar"' in message  # how to write it if it is meant


def test_a_quoted_value_may_hold_any_character() -> None:
    text = ROUTING.replace(
        "  route: {receiver: page}",
        "  route:\n    receiver: page\n    routes:\n      - matchers: ['foo=\"=bar\"']\n"
        "        receiver: page",
    )
    cfg = parse_config(text, environ={})
    assert cfg.routing is not None
    assert cfg.routing.route.routes[0].all_matchers[0].value == "=bar"


def test_a_short_global_scrape_interval_alone_is_valid() -> None:
    cfg = parse_config("global:\n  scrape_interval: 1s\n", environ={})
    # Prometheus's default: min(10s, scrape_interval).
    assert cfg.global_.scrape_timeout == 1.0
    cfg = parse_config("global:\n  scrape_interval: 30s\n", environ={})
    assert cfg.global_.scrape_timeout == 10.0


def test_an_explicit_global_timeout_past_the_interval_is_refused() -> None:
    message = _error("global:\n  scrape_interval: 10s\n  scrape_timeout: 20s\n")
    assert message == (
        "soulwatch.yaml:2:3: global: global scrape timeout (20s) is greater than "
        "the scrape interval (10s)"
    )


def test_durations_use_prometheus_syntax_everywhere() -> None:
    cfg = parse_config(
        "storage:\n  retention_time: 15d\n  head_max_age: 1h\n"
        "probes:\n  - {job_name: p, prober: tcp, targets: ['127.0.0.1:1'], interval: 1m30s}\n",
        environ={},
    )
    assert cfg.storage.retention_time == 15 * 86400
    assert cfg.storage.head_max_age == 3600
    assert cfg.probes[0].interval == 90


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "probes:\n  - {job_name: p, prober: tcp, targets: ['127.0.0.1:1'], interval: 15}\n",
            'soulwatch.yaml:2:68: probes.0.interval: not a valid duration string: "15"',
        ),
        (
            "storage:\n  retention_time: 1296000\n",
            'soulwatch.yaml:2:19: storage.retention_time: not a valid duration string: "1296000"',
        ),
        (
            "global:\n  evaluation_interval: 1.5m\n",
            'soulwatch.yaml:2:24: global.evaluation_interval: not a valid duration string: "1.5m"',
        ),
        (
            "self_monitoring:\n  interval: 1m1h\n",
            'soulwatch.yaml:2:13: self_monitoring.interval: not a valid duration string: "1m1h"',
        ),
        (
            ROUTING.replace("route: {receiver: page}", "route: {receiver: page, group_wait: 30}"),
            'soulwatch.yaml:2:39: alerting.route.group_wait: not a valid duration string: "30"',
        ),
    ],
    ids=["probe-interval", "retention", "fraction", "order", "group-wait"],
)
def test_bad_durations_get_prometheus_error_text(text: str, message: str) -> None:
    assert _error(text) == message


PRESET_LIKE = """\
probes:
  - job_name: upstash-vector
    prober: upstash_vector
    url_env: UPSTASH_VECTOR_REST_URL
    upstash: {token_env: UPSTASH_VECTOR_REST_TOKEN}
alerting:
  route: {receiver: page}
  receivers:
    - name: page
      pagerduty_configs:
        - routing_key_env: PAGERDUTY_ROUTING_KEY
      slack_configs:
        - api_url: "${SLACK_WEBHOOK_URL}"
"""


def test_every_missing_secret_is_reported_at_once() -> None:
    message = _error(PRESET_LIKE, {"UPSTASH_VECTOR_REST_TOKEN": "t"})
    assert message == (
        "soulwatch.yaml:4:14: 3 environment variables are not set:\n"
        "  UPSTASH_VECTOR_REST_URL (line 4, url_env)\n"
        "  PAGERDUTY_ROUTING_KEY (line 11, routing_key_env)\n"
        "  SLACK_WEBHOOK_URL (line 13)"
    )


def test_one_missing_secret_names_its_key() -> None:
    env = {
        "UPSTASH_VECTOR_REST_URL": "https://v.example",
        "UPSTASH_VECTOR_REST_TOKEN": "t",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/x",
    }
    assert _error(PRESET_LIKE, env) == (
        "soulwatch.yaml:11:28: environment variable 'PAGERDUTY_ROUTING_KEY' "
        "(routing_key_env) is not set"
    )


def test_credentials_in_a_scrape_target_are_refused() -> None:
    text = (
        "scrape_configs:\n  - job_name: node\n    static_configs:\n"
        "      - targets: ['admin:hunter2@127.0.0.1:9100']\n"
    )
    message = _error(text)
    assert message.startswith("soulwatch.yaml:4:")
    assert "target '...@127.0.0.1:9100' has credentials in it" in message
    assert "basic_auth" in message
    assert "hunter2" not in message


def test_cors_origins_must_be_origins() -> None:
    message = _error("api:\n  cors_allowed_origins: ['https://app.example.com/path']\n")
    assert "not an origin: 'https://app.example.com/path'" in message
    cfg = parse_config("api:\n  cors_allowed_origins: ['https://app.example.com']\n", environ={})
    assert cfg.api.cors_allowed_origins == ["https://app.example.com"]


def test_the_preset_loads_with_its_variables(tmp_path: Path) -> None:
    from importlib.resources import files

    preset = files("soulwatch.presets").joinpath("soulcaster", "soulwatch.yaml").read_text()
    (tmp_path / "soulwatch.yaml").write_text(preset.replace("rules/*.yml", "none/*.yml"))
    env = dict.fromkeys(
        (
            "SOULCASTER_REDIS_URL",
            "UPSTASH_VECTOR_REST_URL",
            "UPSTASH_VECTOR_REST_TOKEN",
            "E2B_API_KEY",
            "SLACK_WEBHOOK_URL",
            "PAGERDUTY_ROUTING_KEY",
            "GITHUB_TOKEN",
            "SOULWATCH_ADMIN_TOKEN",
        ),
        "https://set.example/x",
    )
    cfg = load_config(tmp_path / "soulwatch.yaml", env)
    assert cfg.storage.retention_time == 15 * 86400
    missing = dict(env)
    del missing["UPSTASH_VECTOR_REST_URL"]
    with pytest.raises(ConfigError, match="'UPSTASH_VECTOR_REST_URL' \\(url_env\\) is not set"):
        load_config(tmp_path / "soulwatch.yaml", missing)
