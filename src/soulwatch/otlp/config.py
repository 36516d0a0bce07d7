"""``otlp:``: the OTLP/HTTP intake's switch and limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from soulwatch.duration import Duration


class OtlpConfig(BaseModel):
    """OTLP over HTTP at ``/v1/traces`` and ``/v1/metrics`` (token scope ``push``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    interval: Duration = 15.0
    max_body_bytes: int = Field(default=4 << 20, ge=1024, le=64 << 20)
    max_series: int = Field(default=10_000, ge=1)
