"""Storage: the data model, the :class:`Storage` interface and its implementations."""

from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels, Matcher, MatchType, Series, is_stale_nan
from soulwatch.tsdb.storage import Appender, Storage

__all__ = [
    "STALE_NAN",
    "Appender",
    "Labels",
    "MatchType",
    "Matcher",
    "MemoryStorage",
    "Series",
    "Storage",
    "is_stale_nan",
]
