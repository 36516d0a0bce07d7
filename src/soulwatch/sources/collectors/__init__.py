"""Collectors: read systems that expose no metrics (the platform's Redis, E2B) into samples."""

from soulwatch.sources.collectors.base import CollectedSample, Collector
from soulwatch.sources.collectors.config import E2BCollectorConfig, SoulcasterCollectorConfig
from soulwatch.sources.collectors.e2b import E2BCollector
from soulwatch.sources.collectors.redis_reader import (
    RedisPyReader,
    RedisReader,
    RedisReadError,
    UpstashRestReader,
)
from soulwatch.sources.collectors.soulcaster import SoulcasterCollector

__all__ = [
    "CollectedSample",
    "Collector",
    "E2BCollector",
    "E2BCollectorConfig",
    "RedisPyReader",
    "RedisReadError",
    "RedisReader",
    "SoulcasterCollector",
    "SoulcasterCollectorConfig",
    "UpstashRestReader",
]
