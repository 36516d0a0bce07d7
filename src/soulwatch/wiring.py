"""What the monitor derives from a config before building anything: rules, routing, data dir."""

from __future__ import annotations

from pathlib import Path

from soulwatch.alerting.config import AlertingConfig
from soulwatch.config import SoulwatchConfig
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.rules.loader import load_rule_files
from soulwatch.rules.model import GroupSpec


def check_rules(config: SoulwatchConfig) -> list[GroupSpec]:
    """The rule groups of ``config``'s rule files; raises on any invalid rule."""
    return load_rule_files(config.rule_paths(), validate_expr=parse_promql)


def routing_of(config: SoulwatchConfig) -> AlertingConfig | None:
    """``config``'s routing as the monitor runs it.

    Without its own ``alerting.external_url``, notifications link to the
    monitor's ``external_url`` (or ``http://<listen>``), the same base as
    the alerts' generator URLs.
    """
    routing = config.routing
    if routing is None or "external_url" in routing.model_fields_set:
        return routing
    url = config.external_url or f"http://{config.listen}"
    return routing.model_copy(update={"external_url": url})


def data_dir_of(config: SoulwatchConfig) -> Path:
    """The data directory, relative paths taken from the config file's folder."""
    data_dir = Path(config.data_dir)
    return data_dir if data_dir.is_absolute() else config.resolve(data_dir)
