"""``remote_write:`` loads prometheus.yml's entries with Prometheus 2.42's defaults."""

from __future__ import annotations

import pytest

from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError


def test_a_prometheus_remote_write_section_loads_with_prometheus_defaults() -> None:
    config = parse_config(
        """
remote_write:
  - url: https://vm.example:8428/api/v1/write
    name: central
    headers: {X-Scope-OrgID: team-a}
    basic_auth: {username: sw, password_file: /run/secrets/vm}
    tls_config: {ca_file: /etc/ssl/vm.pem, insecure_skip_verify: false}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
    queue_config: {max_samples_per_send: 2000, batch_send_deadline: 10s}
    metadata_config: {send: false}
  - url: http://127.0.0.1:9090/api/v1/write
"""
    )
    central, local = config.remote_write
    assert central.queue_name == "central"
    assert central.queue_config.max_samples_per_send == 2000
    assert central.queue_config.batch_send_deadline == 10.0
    assert central.write_relabel_configs[0].action == "drop"
    assert central.metadata_config.send is False
    q = local.queue_config
    assert (q.capacity, q.min_shards, q.max_shards, q.max_samples_per_send) == (2500, 1, 200, 500)
    assert (q.batch_send_deadline, q.min_backoff, q.max_backoff) == (5.0, 0.03, 5.0)
    assert q.retry_on_http_429 is False
    assert local.remote_timeout == 30.0
    assert len(local.queue_name) == 6  # unnamed: a hash of the URL, as Prometheus names it


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("url: vm:8428/api/v1/write", "url must be an http:// or https:// URL"),
        ("url: http://h/w\n    queue_config: {min_shards: 5, max_shards: 2}", "min_shards"),
        ("url: http://h/w\n    headers: {Content-Encoding: gzip}", "Content-Encoding"),
        ("url: http://h/w\n    queue_config: {capacity: 0}", "capacity"),
        ("url: http://h/w\n    queue_size: 3", "queue_size"),
    ],
)
def test_bad_entries_name_what_and_where(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"remote_write:\n  - {entry}\n", "sw.yaml")
    text = str(info.value)
    assert message in text
    assert "sw.yaml:" in text


def test_two_entries_may_not_share_a_queue() -> None:
    with pytest.raises(ConfigError, match="duplicate remote_write"):
        parse_config("remote_write:\n  - url: http://a/w\n  - url: http://a/w\n")
