"""High availability: two or more monitors, one notifier, coordinated through Redis.

See docs/ha.md. :class:`HaConfig` is the ``ha`` section; :func:`build_ha`
makes the :class:`HaCoordinator` the monitor's outbox asks before each send.
"""

from __future__ import annotations

from soulwatch.ha.config import HaConfig

__all__ = ["HaConfig"]
