"""Building an instance's :class:`HaCoordinator` from the monitor's config."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.silences import SilenceStore
from soulwatch.clock import Clock
from soulwatch.config import SoulwatchConfig
from soulwatch.exceptions import ConfigError
from soulwatch.ha.coordinator import HaCoordinator, redis_client
from soulwatch.redaction import redact_url
from soulwatch.runner import BlockingRunner


def build_ha(
    config: SoulwatchConfig,
    *,
    clock: Clock,
    runner: BlockingRunner,
    silences: SilenceStore,
    acks: AckStore | None,
    registry: CollectorRegistry | None,
) -> HaCoordinator | None:
    """The coordinator of ``config.ha``; ``None`` when no Redis is configured (alone)."""
    ha = config.ha
    if not ha.enabled:
        return None
    try:
        url = ha.resolved_redis_url() or ""
    except OSError as exc:
        raise ConfigError(f"ha.redis_url_file: cannot read {ha.redis_url_file}: {exc}") from exc
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"ha.redis_url must start with redis://, rediss:// or unix:// (got {redact_url(url)!r})"
        )
    try:
        client = redis_client(url, ha.redis_timeout)
    except ValueError as exc:
        raise ConfigError(f"ha.redis_url is not a valid Redis URL ({redact_url(url)})") from exc
    return HaCoordinator(
        ha,
        client=client,
        instance=ha.instance_name(config.listen),
        url=url,
        clock=clock,
        runner=runner,
        silences=silences,
        acks=acks,
        evaluation_interval=config.global_.evaluation_interval,
        registry=registry,
    )
