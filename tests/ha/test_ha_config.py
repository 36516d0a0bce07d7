"""The ``ha`` section: its defaults, its secret sources, and errors that name the setting."""

from __future__ import annotations

import pytest

from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.status import config_yaml
from soulwatch.clock import SystemClock
from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError
from soulwatch.ha.wiring import build_ha
from soulwatch.runner import run_inline


def test_without_a_redis_url_the_monitor_runs_alone():
    config = parse_config("listen: 127.0.0.1:9797\n")
    assert config.ha.enabled is False
    assert config.ha.lease_ttl == 15.0


def test_the_url_comes_from_a_file_or_the_environment_and_is_never_shown(tmp_path):
    secret = "redis://:s3cret-pass@127.0.0.1:6390/0"
    (tmp_path / "url").write_text(secret + "\n")
    from_file = parse_config(
        "listen: 0.0.0.0:9797\nha:\n  redis_url_file: url\n  lease_ttl: 5s\n", base_dir=tmp_path
    )
    assert from_file.ha.resolved_redis_url() == secret
    assert from_file.ha.instance_name(from_file.listen).endswith(":9797")
    from_env = parse_config(
        "ha:\n  redis_url_env: SW_REDIS\n  instance: monitor-a\n", environ={"SW_REDIS": secret}
    )
    assert from_env.ha.resolved_redis_url() == secret
    assert from_env.ha.instance_name(from_env.listen) == "monitor-a"
    assert "s3cret" not in config_yaml(from_env)


def test_bad_settings_are_refused_naming_them(tmp_path):
    with pytest.raises(ConfigError, match="lease_ttl"):
        parse_config("ha:\n  redis_url: redis://127.0.0.1:6379\n  lease_ttl: 0.5s\n")
    with pytest.raises(ConfigError, match="redis_url_file"):
        parse_config("ha:\n  redis_url: redis://x\n  redis_url_file: /nope\n")
    config = parse_config("ha:\n  redis_url: http://:pw@127.0.0.1:6379\n")
    silences = SilenceStore(tmp_path / "s.sqlite", SystemClock())
    with pytest.raises(ConfigError, match=r"ha\.redis_url must start with redis://") as err:
        build_ha(
            config,
            clock=SystemClock(),
            runner=run_inline,
            silences=silences,
            acks=None,
            registry=None,
        )
    assert "pw" not in str(err.value)
    silences.close()
