"""Sources of samples: scrape targets, probes, heartbeats, collectors.

Each is a :class:`~soulwatch.sources.base.Source` run by the
:class:`~soulwatch.sources.base.Scheduler` on the injected clock.
"""

from soulwatch.sources.base import Health, Scheduler, Source, SourceStatus

__all__ = ["Health", "Scheduler", "Source", "SourceStatus"]
