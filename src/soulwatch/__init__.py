"""soulwatch: monitoring and alerting for the Soulcaster platform.

Two halves live in this package:

* :mod:`soulwatch.instrument`, the light SDK the monitored services import;
* the monitor (``soulwatch run``): sources, embedded storage, PromQL, rules and
  durable alert delivery in one process.

The names re-exported here are the reviewed public API; ``tests/test_public_api.py``
locks the list.
"""

from soulwatch.clock import Clock, SimulatedClock, SystemClock
from soulwatch.exceptions import SoulwatchError

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "SimulatedClock",
    "SoulwatchError",
    "SystemClock",
    "__version__",
]
