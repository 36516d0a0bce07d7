"""Active probes with blackbox_exporter's names: HTTP, TCP, Redis, Upstash REST and Vector."""

from soulwatch.sources.probes.base import Prober, ProbeResult, ProbeSource
from soulwatch.sources.probes.config import (
    HTTPProbe,
    ProbeConfig,
    ProbesFile,
    load_probes_config,
    load_probes_file,
    resolve_probe_configs,
)
from soulwatch.sources.probes.manager import ProbeManager, make_prober

__all__ = [
    "HTTPProbe",
    "ProbeConfig",
    "ProbeManager",
    "ProbeResult",
    "ProbeSource",
    "Prober",
    "ProbesFile",
    "load_probes_config",
    "load_probes_file",
    "make_prober",
    "resolve_probe_configs",
]
