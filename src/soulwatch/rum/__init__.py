"""Real-user monitoring: a browser agent, its intake, and the ``rum_*`` metrics.

Pages load ``/rum/v1/agent.js`` (or import ``/rum/v1/agent.mjs``); it posts
batches of page views, web vitals, errors and ``/api/*`` fetch timings to
``/rum/v1/events``. :class:`RumIntake` checks them and :class:`RumRecorder`
keeps the aggregates that the monitor writes as ordinary series.
"""

from soulwatch.rum.config import RumConfig, RumSiteConfig
from soulwatch.rum.intake import RumIntake
from soulwatch.rum.recorder import RumRecorder

__all__ = ["RumConfig", "RumIntake", "RumRecorder", "RumSiteConfig"]
