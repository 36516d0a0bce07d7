"""The typed settings of the embedded TSDB (the ``storage:`` section of soulwatch.yaml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from soulwatch.duration import Duration


class StorageConfig(BaseModel):
    """Settings of :class:`soulwatch.tsdb.db.TSDB`; every field is documented in docs/storage.md.

    Durations are Prometheus durations (``15d``, ``1s``) and sizes are bytes;
    ``0`` or ``None`` turns a limit off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        default=Path("data/tsdb"),
        description="Directory holding chunks.sqlite, the wal/ segments and the lock file.",
    )
    retention_time: Duration = Field(
        default=15 * 24 * 3600.0,
        gt=0,
        description="Samples older than this (by their timestamp, against the clock) are deleted.",
    )
    retention_size: int | None = Field(
        default=None,
        ge=0,
        description="Oldest chunks are deleted while the store is bigger than this many bytes.",
    )
    series_limit_total: int | None = Field(
        default=None, ge=0, description="The most series the store holds; new ones are rejected."
    )
    series_limit_per_source: int | None = Field(
        default=None,
        ge=0,
        description="The most series one source (scrape target, probe) may create.",
    )
    wal_fsync_interval: Duration = Field(
        default=1.0,
        ge=0,
        description="The WAL is fsynced at most this often (0: on every commit).",
    )
    wal_segment_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="A WAL segment is closed at the next maintenance once it is this big.",
    )
    wal_segment_max_age: Duration = Field(
        default=300.0,
        gt=0,
        description="A WAL segment is closed at the next maintenance once it is this old.",
    )
    chunk_samples: int = Field(
        default=120,
        ge=2,
        le=0xFFFF,
        description="Samples per compressed chunk (Prometheus cuts at 120).",
    )
    head_max_age: Duration = Field(
        default=3600.0,
        gt=0,
        description="Head samples older than this are written to a chunk even if it is short.",
    )
    chunk_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Decoded chunks kept in memory for later queries, at most this many bytes.",
    )
    busy_timeout: Duration = Field(
        default=5.0, gt=0, description="SQLite busy_timeout, in seconds, for every connection."
    )
