"""The typed settings of rule evaluation (the ``rules:`` part of the monitor's config).

The service fills a :class:`RulesConfig` and passes its values to
:class:`~soulwatch.rules.evaluator.RuleManager`; nothing here reads the
environment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from soulwatch.rules.model import parse_duration


class RulesConfig(BaseModel):
    """Rule files and how they are evaluated."""

    model_config = ConfigDict(extra="forbid")

    #: Prometheus rule files (globs are expanded by the caller).
    files: list[str] = Field(default_factory=list)
    #: Interval of groups that do not set one (Prometheus's ``evaluation_interval``).
    evaluation_interval: str = "1m"
    #: Minimum time between two sends of the same firing alert.
    resend_delay: str = "1m"
    #: Labels templates see as ``$externalLabels`` (and the alerting side may add).
    external_labels: dict[str, str] = Field(default_factory=dict)
    #: ``$externalURL`` in templates and the base of alerts' generator URL.
    external_url: str = ""

    @field_validator("evaluation_interval", "resend_delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be a positive duration")
        return value

    @property
    def evaluation_interval_s(self) -> float:
        """``evaluation_interval`` in seconds."""
        return parse_duration(self.evaluation_interval)

    @property
    def resend_delay_s(self) -> float:
        """``resend_delay`` in seconds."""
        return parse_duration(self.resend_delay)
