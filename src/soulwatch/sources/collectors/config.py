"""Settings of the Soulcaster and E2B collectors (the ``collectors:`` section)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Failure categories derived from an agent job's logs: the seed plan's three
#: plus the messages the runner really writes. First match wins.
DEFAULT_FAILURE_PATTERNS: list[tuple[str, str]] = [
    ("pr_creation_failed", r"PR creation failed|failed to create (a )?(pull request|PR)"),
    ("sandbox_timeout", r"Sandbox timeout|sandbox .*timed? ?out|TimeoutException"),
    ("linter_error", r"Linter error|lint(ing|er)? (failed|error)"),
    ("github_auth", r"GitHub authentication required|Bad credentials"),
    ("agent_exit", r"Agent script exited with code \d+"),
]

#: Job duration buckets in seconds: they reach well past the 15-minute
#: "sandbox timeout" threshold so that its quantiles are meaningful.
DEFAULT_DURATION_BUCKETS = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0]


class FailurePattern(BaseModel):
    """A regex (case-insensitive, searched in the job's logs) and the category it means."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value


class SoulcasterCollectorConfig(BaseModel):
    """Reads the platform's Redis keys as they are: ``job:*``, ``cluster_job:*``, Reddit sets."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL of the platform's Redis."
    )
    upstash_rest_url: str | None = Field(
        default=None, description="Upstash REST URL, used when redis_url is not set."
    )
    upstash_rest_token: str | None = None
    interval_seconds: float = Field(default=15.0, gt=0)
    scan_count: int = Field(default=500, ge=10, description="COUNT hint of each SCAN call.")
    scan_budget: int = Field(
        default=20, ge=1, description="SCAN calls per key pattern per cycle (bounds the cost)."
    )
    failure_patterns: list[FailurePattern] = Field(
        default_factory=lambda: [
            FailurePattern(category=c, pattern=p) for c, p in DEFAULT_FAILURE_PATTERNS
        ]
    )
    duration_buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_DURATION_BUCKETS))
    job_detail_after_seconds: float = Field(
        default=600.0,
        gt=0,
        description="An agent job pending or running this long gets its own age series "
        "(job_id, project_id, cluster_id), so a stuck-job alert names it. Keep it at or "
        "below the stuck-job rules' thresholds.",
    )
    job_detail_limit: int = Field(
        default=20, ge=1, description="At most this many per-job age series, oldest first."
    )


class E2BCollectorConfig(BaseModel):
    """Sandbox concurrency from E2B's API and sandbox-hours against the monthly quota."""

    model_config = ConfigDict(extra="forbid")

    api_url: str = "https://api.e2b.app"
    api_key: str | None = Field(
        default=None, description="E2B API key; without it only sandbox-hours are computed."
    )
    sandbox_limit: int = Field(default=20, ge=1, description="The plan's concurrent sandboxes.")
    monthly_hours_quota: float = Field(default=100.0, gt=0)
    interval_seconds: float = Field(default=60.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)


class VercelCollectorConfig(BaseModel):
    """Usage this billing month from Vercel's REST API against the plan's limits."""

    model_config = ConfigDict(extra="forbid")

    api_url: str = "https://api.vercel.com"
    token: str = Field(min_length=1, description="A Vercel access token (use token_env / _file).")
    team_id: str | None = None
    limits: dict[str, float] = Field(
        min_length=1,
        description="The plan's monthly limit per FOCUS ServiceName, in its ConsumedUnit.",
    )
    interval_seconds: float = Field(default=900.0, gt=0)
    timeout_seconds: float = Field(default=30.0, gt=0)
