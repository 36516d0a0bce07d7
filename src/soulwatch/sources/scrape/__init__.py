"""Prometheus-compatible scraping: config, parser, relabeling, targets and the manager."""

from soulwatch.sources.scrape.config import (
    GlobalConfig,
    PrometheusConfig,
    RelabelConfig,
    ScrapeConfig,
    StaticConfig,
    load_prometheus_config,
    load_prometheus_file,
    resolve_scrape_configs,
)
from soulwatch.sources.scrape.manager import ScrapeManager, target_labels
from soulwatch.sources.scrape.target import ScrapeTarget, TargetStatus

__all__ = [
    "GlobalConfig",
    "PrometheusConfig",
    "RelabelConfig",
    "ScrapeConfig",
    "ScrapeManager",
    "ScrapeTarget",
    "StaticConfig",
    "TargetStatus",
    "load_prometheus_config",
    "load_prometheus_file",
    "resolve_scrape_configs",
    "target_labels",
]
