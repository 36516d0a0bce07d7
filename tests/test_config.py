"""soulwatch.yaml: Prometheus sections load unchanged; errors point at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from soulwatch.config import Scope, load_config, parse_config
from soulwatch.exceptions import ConfigError

PROMETHEUS_YML = """\
# A prometheus.yml as people write them.
global:
  scrape_interval: 15s
  evaluation_interval: 30s
  external_labels:
    monitor: soulcaster

rule_files:
  - "rules/*.yml"

scrape_configs:
  - job_name: backend
    metrics_path: /metrics
    scrape_interval: 5s
    static_configs:
      - targets: ["127.0.0.1:8000"]
        labels: {env: prod}
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):.*"
        replacement: "${1}"
        target_label: host
"""


def test_prometheus_sections_load_unchanged(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    cfg_file = tmp_path / "prometheus.yml"
    cfg_file.write_text(PROMETHEUS_YML)
    cfg = load_config(cfg_file, environ={})
    assert cfg.global_.scrape_interval == 15.0
    assert cfg.global_.evaluation_interval == 30.0
    assert cfg.global_.external_labels == {"monitor": "soulcaster"}
    [job] = cfg.resolved_scrape_configs()
    assert job.job_name == "backend"
    assert job.interval == 5.0
    assert job.timeout == 5.0  # the global 10s timeout, capped at the job's interval
    # Relabel capture-group references are not environment references.
    assert job.relabel_configs[0].replacement == "${1}"
    assert cfg.base_dir == tmp_path


def test_unknown_key_is_an_error_with_position_and_suggestion() -> None:
    text = "global:\n  scrape_intervl: 15s\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sw.yaml", environ={})
    assert str(err.value) == (
        "sw.yaml:2:3: unknown setting 'scrape_intervl' in global (did you mean 'scrape_interval'?)"
    )


def test_unknown_top_level_key_suggests_the_section() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("listen: 127.0.0.1:9797\nheartbeat: {}\n", "sw.yaml", environ={})
    assert str(err.value).startswith("sw.yaml:2:1: unknown setting 'heartbeat' in the top level")
    assert "did you mean 'heartbeats'" in str(err.value)


def test_bad_value_names_the_setting_and_line() -> None:
    text = "heartbeats:\n  checks:\n    - name: poller\n      period: 5 minutes\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sw.yaml", environ={})
    assert err.value.line == 4
    assert err.value.column == 15
    assert "heartbeats.checks.0.period" in str(err.value)
    assert 'not a valid duration string: "5 minutes"' in str(err.value)


def test_yaml_syntax_error_has_a_position() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("global:\n  scrape_interval: [15s\n", "sw.yaml", environ={})
    assert err.value.file == "sw.yaml"
    assert err.value.line is not None
    assert "invalid YAML" in str(err.value)


def test_secrets_from_env_references_and_env_keys() -> None:
    text = (
        "auth:\n  reads: token\n  tokens:\n"
        "    - name: ci\n      token_env: SW_TOKEN\n      scopes: [push]\n"
        "self_monitoring:\n  deadman_url: https://hc.example/${DEADMAN}\n"
    )
    cfg = parse_config(text, environ={"SW_TOKEN": "x" * 20, "DEADMAN": "abc"})
    assert cfg.auth.tokens[0].secret() == "x" * 20
    assert cfg.auth.tokens[0].scopes == [Scope.PUSH]
    assert cfg.self_monitoring.resolved_deadman_url() == "https://hc.example/abc"
    # Secrets do not show in reprs, so they do not reach logs.
    assert "x" * 20 not in repr(cfg)


def test_missing_env_variable_is_reported_where_it_is_used() -> None:
    text = "auth:\n  tokens:\n    - name: ci\n      token_env: NOPE\n      scopes: [admin]\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sw.yaml", environ={})
    assert str(err.value).startswith("sw.yaml:4:18: environment variable 'NOPE'")


def test_token_file_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cr3t-token-0123456789\n")
    cfg_file = tmp_path / "sw.yaml"
    cfg_file.write_text("auth:\n  tokens:\n    - {name: a, token_file: secret, scopes: [admin]}\n")
    cfg = load_config(cfg_file, environ={})
    assert cfg.auth.tokens[0].secret() == "s3cr3t-token-0123456789"


def test_missing_rule_file_is_an_error(tmp_path: Path) -> None:
    cfg_file = tmp_path / "sw.yaml"
    cfg_file.write_text("rule_files: [alerts.yml]\n")
    with pytest.raises(ConfigError, match=r"rule file not found: alerts\.yml"):
        load_config(cfg_file, environ={})


def test_alerting_inline_or_file_not_both() -> None:
    text = "alerting:\n  config_file: am.yml\n  route: {receiver: x}\n"
    with pytest.raises(ConfigError, match=r"either alerting\.config_file or the Alertmanager keys"):
        parse_config(text, environ={})


def test_inline_alertmanager_keys_are_validated_by_the_routing_model() -> None:
    text = (
        "alerting:\n  route: {receiver: team, group_by: [alertname]}\n"
        "  receivers:\n    - name: team\n      webhook_configs: [{url: 'http://127.0.0.1:1/'}]\n"
    )
    routing = parse_config(text, environ={}).routing
    assert routing is not None
    assert routing.route.receiver == "team"
    assert routing.receivers[0].webhook_configs[0].url == "http://127.0.0.1:1/"


def test_inline_alertmanager_errors_have_positions_in_this_file() -> None:
    text = (
        "listen: 127.0.0.1:9797\n"
        "alerting:\n  route: {receiver: team}\n"
        "  receivers:\n    - name: team\n      webhook_config: []\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sw.yaml", environ={})
    assert str(err.value).startswith("sw.yaml:6:7: unknown setting 'webhook_config'")
    assert "did you mean 'webhook_configs'" in str(err.value)
    text = "alerting:\n  route: {receiver: nobody}\n  receivers:\n    - name: team\n"
    with pytest.raises(ConfigError, match="undefined receiver 'nobody'") as err:
        parse_config(text, "sw.yaml", environ={})
    assert err.value.line == 2


def test_alertmanager_yml_by_path(tmp_path: Path) -> None:
    (tmp_path / "alertmanager.yml").write_text(
        "route: {receiver: team}\nreceivers:\n  - name: team\n"
    )
    cfg_file = tmp_path / "sw.yaml"
    cfg_file.write_text("alerting:\n  config_file: alertmanager.yml\n")
    routing = load_config(cfg_file, environ={}).routing
    assert routing is not None
    assert routing.receivers[0].name == "team"


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    cfg = parse_config("listen: 127.0.0.1:1\n", environ={})
    new = cfg.with_overrides(data_dir=tmp_path, listen="127.0.0.1:9999")
    assert new.listen == "127.0.0.1:9999"
    assert new.data_dir == tmp_path.resolve()
    with pytest.raises(ValueError, match="host:port"):
        cfg.with_overrides(listen="nonsense")


def test_bad_listen_address() -> None:
    with pytest.raises(ConfigError, match=r"1:9: listen: listen must be host:port"):
        parse_config("listen: localhost\n", "sw.yaml", environ={})


def test_duplicate_heartbeat_names() -> None:
    text = "heartbeats:\n  checks:\n    - {name: a}\n    - {name: a}\n"
    with pytest.raises(ConfigError, match="duplicate check name"):
        parse_config(text, "sw.yaml", environ={})


def test_unknown_key_inside_a_scrape_job() -> None:
    text = "scrape_configs:\n  - job_name: a\n    metric_path: /m\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sw.yaml", environ={})
    assert str(err.value).startswith(
        "sw.yaml:3:5: unknown setting 'metric_path' in scrape_configs.0"
        " (did you mean 'metrics_path'?)"
    )


def test_collectors_section() -> None:
    text = "collectors:\n  soulcaster:\n    redis_url: redis://127.0.0.1:6379/0\n"
    cfg = parse_config(text, environ={})
    assert cfg.collectors.soulcaster is not None
    assert cfg.collectors.soulcaster.redis_url == "redis://127.0.0.1:6379/0"
    assert cfg.collectors.e2b is None


def test_env_keys_a_component_reads_itself_are_left_alone() -> None:
    text = (
        "probes:\n  - job_name: upstash\n    prober: http\n    url_env: UPSTASH_URL\n"
        "auth:\n  tokens:\n    - {name: ci, token_env: SW_TOKEN, scopes: [push]}\n"
    )
    cfg = parse_config(text, environ={"SW_TOKEN": "t" * 20, "UPSTASH_URL": "https://u.example"})
    # The probe resolves url_env when it starts; the token is read now.
    assert cfg.probes[0].url_env == "UPSTASH_URL"
    assert cfg.auth.tokens[0].secret() == "t" * 20


_EXTENSIONS = """\
alerting:
  route: {receiver: page}
  receivers:
    - name: page
      webhook_configs: [{url: "http://127.0.0.1:9/page"}]
  external_url: https://soulwatch.example
  delivery:
    initial_backoff: 2s
    deadline: 1h
  actions:
    - name: trigger-poll
      http:
        url: "http://127.0.0.1:8000/admin/trigger-poll?project_id=p1"
      verify_after: 3m
      cooldown: 15m
      max_attempts: 2
"""


def test_inline_alerting_extensions_load() -> None:
    routing = parse_config(_EXTENSIONS, environ={}).routing
    assert routing is not None
    assert routing.external_url == "https://soulwatch.example"
    assert (routing.delivery.initial_backoff, routing.delivery.deadline) == (2.0, 3600.0)
    [action] = routing.actions
    assert action.name == "trigger-poll"
    assert action.http is not None
    assert action.http.method == "POST"
    assert action.http.url.endswith("/admin/trigger-poll?project_id=p1")
    assert (action.verify_after, action.cooldown, action.max_attempts) == (180.0, 900.0, 2)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  actions:", "  action:", r"f\.yml:10:3: unknown setting 'action' .*'actions'"),
        ("initial_backoff", "initial_bakoff", r"f\.yml:8:5: .*'initial_bakoff'.*'initial_backoff'"),
        ("verify_after: 3m", "verify_after: soon", r"f\.yml:14:21: .*verify_after.*duration"),
        ("      http:\n", "      htp:\n", r"f\.yml:12:7: .*'htp'.*'http'"),
        ("max_attempts: 2", "max_attempts: 0", r"f\.yml:16:21: .*max_attempts"),
    ],
)
def test_inline_alerting_extension_errors_have_positions(old: str, new: str, message: str) -> None:
    assert old in _EXTENSIONS
    with pytest.raises(ConfigError, match=message):
        parse_config(_EXTENSIONS.replace(old, new), "f.yml", environ={})


def test_an_action_needs_http_or_command() -> None:
    text = _EXTENSIONS.replace(
        '      http:\n        url: "http://127.0.0.1:8000/admin/trigger-poll?project_id=p1"\n', ""
    )
    with pytest.raises(ConfigError, match=r"f\.yml:11:7: .*exactly one of http and command"):
        parse_config(text, "f.yml", environ={})


def test_silences_section_sets_limits_and_rejects_unknown_keys() -> None:
    config = parse_config("silences:\n  max_duration: 12h\n  retention: 2d\n", "sw.yaml", {})
    assert config.silences.max_duration == 12 * 3600
    assert config.silences.retention == 2 * 86400
    with pytest.raises(ConfigError, match=r"sw.yaml:2:3: unknown setting 'max_duraton'"):
        parse_config("silences:\n  max_duraton: 1h\n", "sw.yaml", {})


def test_promql_features_from_the_file_and_the_command_line() -> None:
    config = parse_config("enable_features: [promql-delayed-name-removal]\n")
    assert config.enable_features == ["promql-delayed-name-removal"]
    both = config.with_overrides(
        enable_features=["type-and-unit-labels", "promql-delayed-name-removal"]
    )
    assert both.enable_features == ["promql-delayed-name-removal", "type-and-unit-labels"]
    with pytest.raises(ConfigError, match="unknown feature 'native-histograms' \\(known: "):
        parse_config("enable_features: [native-histograms]\n")
    with pytest.raises(ValueError, match="unknown feature 'nope'"):
        config.with_overrides(enable_features=["nope"])


async def test_the_monitors_engine_runs_with_the_configured_features(tmp_path: Path) -> None:
    from soulwatch.clock import SimulatedClock
    from soulwatch.service import Monitor

    config = parse_config(f"data_dir: {tmp_path}\nenable_features: [promql-delayed-name-removal]\n")
    monitor = Monitor(config, clock=SimulatedClock(start=1_700_000_000.0))
    await monitor.start()
    try:
        assert monitor.parts.engine.features == {"promql-delayed-name-removal"}
    finally:
        await monitor.stop()
