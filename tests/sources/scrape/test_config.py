"""Loading prometheus.yml scrape configs: unchanged files load, bad keys are named."""

from __future__ import annotations

import pytest

from soulwatch.duration import parse_duration
from soulwatch.exceptions import ConfigError
from soulwatch.sources.scrape import load_prometheus_config, target_labels
from soulwatch.sources.scrape.config import parse_size

PROMETHEUS_YML = """
global:
  scrape_interval: 30s
  scrape_timeout: 20s
  evaluation_interval: 30s
  external_labels:
    cluster: prod
rule_files:
  - rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:9093"]
scrape_configs:
  - job_name: backend
    metrics_path: /internal/metrics
    scheme: http
    honor_labels: true
    honor_timestamps: false
    scrape_interval: 15s
    params:
      format: [prometheus]
    authorization:
      type: Bearer
      credentials: s3cret
    sample_limit: 50000
    label_limit: 30
    body_size_limit: 10MB
    static_configs:
      - targets: ["api.internal:8000", "api2.internal:8000"]
        labels:
          service: backend
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "go_.*"
        action: drop
      - regex: "pod_uid"
        action: labeldrop
  - job_name: dashboard
    basic_auth:
      username: admin
      password: pw
    static_configs:
      - targets: ["dashboard:3000"]
"""


def test_an_existing_prometheus_yml_loads_unchanged() -> None:
    cfg = load_prometheus_config(PROMETHEUS_YML, file="prometheus.yml")
    backend, dashboard = cfg.resolved_scrape_configs()
    assert backend.job_name == "backend"
    assert (backend.interval, backend.timeout) == (15.0, 15.0)  # global timeout capped at interval
    assert (dashboard.interval, dashboard.timeout) == (30.0, 20.0)  # global defaults
    assert backend.honor_labels is True
    assert backend.honor_timestamps is False
    assert backend.body_size_limit == 10 * 1024 * 1024
    assert backend.sample_limit == 50000
    assert [r.action for r in backend.metric_relabel_configs] == ["drop", "labeldrop"]
    url, labels = target_labels(backend, "api.internal:8000", {"service": "backend"}) or ("", {})
    assert url == "http://api.internal:8000/internal/metrics?format=prometheus"
    assert dict(labels) == {"job": "backend", "instance": "api.internal:8000", "service": "backend"}


def test_an_unknown_key_is_an_error_naming_it_and_its_line() -> None:
    text = PROMETHEUS_YML.replace("    sample_limit: 50000", "    sample_limimt: 50000")
    with pytest.raises(ConfigError) as err:
        load_prometheus_config(text, file="prometheus.yml")
    assert err.value.file == "prometheus.yml"
    assert err.value.line == text.splitlines().index("    sample_limimt: 50000") + 1
    assert "unknown key 'sample_limimt'" in str(err.value)


def test_service_discovery_is_refused_rather_than_ignored() -> None:
    text = "scrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      - role: pod\n"
    with pytest.raises(ConfigError, match="'kubernetes_sd_configs' is a Prometheus setting"):
        load_prometheus_config(text)


def test_a_timeout_longer_than_the_interval_is_refused() -> None:
    text = "scrape_configs:\n  - job_name: x\n    scrape_interval: 5s\n    scrape_timeout: 10s\n"
    with pytest.raises(ConfigError, match="greater than scrape_interval") as err:
        load_prometheus_config(text, file="p.yml")
    assert err.value.line == 2


def test_bad_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_prometheus_config("scrape_configs:\n  - job_name: [unclosed\n", file="p.yml")
    assert err.value.line == 3


def test_duplicate_job_names_are_refused() -> None:
    text = "scrape_configs:\n  - job_name: a\n  - job_name: a\n"
    with pytest.raises(ConfigError, match="multiple scrape configs with job name 'a'"):
        load_prometheus_config(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("100ms", 0.1), ("1h", 3600.0), ("1d", 86400.0), ("0", 0.0)],
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration_and_size() -> None:
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration("15 seconds")
    with pytest.raises(ValueError, match="not a valid size"):
        parse_size("ten megs")
    assert parse_size("512KiB") == 512 * 1024


def test_relabel_configs_shape_targets() -> None:
    text = """
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: {module: [http_2xx]}
    static_configs:
      - targets: ["https://soulcaster.dev/health"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115
"""
    (cfg,) = load_prometheus_config(text).resolved_scrape_configs()
    built = target_labels(cfg, "https://soulcaster.dev/health", {})
    assert built is not None
    url, labels = built
    assert url == (
        "http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fsoulcaster.dev%2Fhealth"
    )
    assert dict(labels) == {"job": "blackbox", "instance": "https://soulcaster.dev/health"}


def test_prometheus_3_keys_load_and_scrape_protocols_set_the_accept_header() -> None:
    text = """
global:
  scrape_interval: 15s
  scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
  rule_query_offset: 10s
scrape_configs:
  - job_name: a
    enable_compression: false
    fallback_scrape_protocol: PrometheusText0.0.4
    http_headers:
      X-Tenant: {values: [soulcaster]}
    static_configs: [{targets: ["127.0.0.1:1"]}]
  - job_name: b
    scrape_protocols: [OpenMetricsText1.0.0]
"""
    a, b = load_prometheus_config(text).resolved_scrape_configs()
    assert a.accept == (
        "text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0.75,*/*;q=0.1"
    )
    assert b.accept == "application/openmetrics-text;version=1.0.0,*/*;q=0.1"
    assert a.header_values() == {"X-Tenant": "soulcaster"}
    with pytest.raises(ConfigError, match="'PrometheusProto' is not supported"):
        load_prometheus_config(
            "scrape_configs:\n  - job_name: x\n    scrape_protocols: [PrometheusProto]\n"
        )
    with pytest.raises(ConfigError, match="scrape_native_histograms"):
        load_prometheus_config(
            "scrape_configs:\n  - job_name: x\n    scrape_native_histograms: true\n"
        )


def test_raw_entries_from_soulwatch_yaml_resolve_with_its_global_section() -> None:
    from soulwatch.sources.scrape import resolve_scrape_configs

    entries = [{"job_name": "a", "static_configs": [{"targets": ["127.0.0.1:1"]}]}]
    (cfg,) = resolve_scrape_configs(entries, {"scrape_interval": "20s", "unrelated": 1})
    assert (cfg.interval, cfg.timeout) == (20.0, 10.0)
    with pytest.raises(
        ConfigError, match=r"unknown key 'sample_limt' at scrape_configs\.1\.sample_limt"
    ):
        resolve_scrape_configs([entries[0], {"job_name": "b", "sample_limt": 1}])


def test_a_zero_interval_means_the_global_one_and_a_zero_global_is_refused() -> None:
    text = (
        "global: {scrape_interval: 30s}\nscrape_configs:\n  - {job_name: a, scrape_interval: 0s}\n"
    )
    (cfg,) = load_prometheus_config(text).resolved_scrape_configs()
    assert cfg.interval == 30.0
    with pytest.raises(ValueError, match="scrape_interval must be positive"):
        load_prometheus_config(text.replace("30s", "0s")).resolved_scrape_configs()
