"""Why the TSDB refused a sample: as data (:class:`RejectedSample`, listed after
``commit``) and as errors (raised by ``append`` of a strict appender).

All the errors are :class:`~soulwatch.exceptions.StorageError` subclasses, so a
strict caller catches one type per sample, counts it, and goes on with the rest
of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from soulwatch.exceptions import SeriesLimitError, StorageError
from soulwatch.tsdb.model import Labels


class RejectReason(Enum):
    """Why a sample was not stored (the ``reason`` label of the rejection counter)."""

    OUT_OF_ORDER = "out_of_order"
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"
    TOO_OLD = "too_old"
    SERIES_LIMIT = "series_limit"


@dataclass(frozen=True)
class RejectedSample:
    """One sample a commit did not store, and why."""

    labels: Labels
    t_ms: int
    value: float
    reason: RejectReason


class SampleRejectedError(StorageError):
    """A sample was refused; ``reason`` says why. The rest of the batch is unaffected."""

    reason: RejectReason

    def __init__(self, message: str, *, labels: Labels, t_ms: int) -> None:
        self.labels = labels
        self.t_ms = t_ms
        super().__init__(f"{labels}: {message}")


class OutOfOrderSampleError(SampleRejectedError):
    """The sample is older than the newest one stored for its series."""

    reason = RejectReason.OUT_OF_ORDER


class DuplicateSampleError(SampleRejectedError):
    """The series already has a different value at this timestamp."""

    reason = RejectReason.DUPLICATE_TIMESTAMP


class SampleTooOldError(SampleRejectedError):
    """The sample is older than the retention window and would be deleted at once."""

    reason = RejectReason.TOO_OLD


class SeriesLimitExceededError(SeriesLimitError):
    """A new series was refused by ``series_limit_total`` or ``series_limit_per_source``."""

    reason = RejectReason.SERIES_LIMIT

    def __init__(self, message: str, *, labels: Labels, t_ms: int, limit: str) -> None:
        self.labels = labels
        self.t_ms = t_ms
        self.limit = limit  # "total" or "per_source"
        super().__init__(f"{labels}: {message}")
