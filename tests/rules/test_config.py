"""RulesConfig: durations are validated, unknown keys rejected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from soulwatch.rules.config import RulesConfig


def test_defaults_and_durations() -> None:
    config = RulesConfig(files=["a.yml"], evaluation_interval="30s")
    assert config.evaluation_interval_s == 30
    assert config.resend_delay_s == 60


@pytest.mark.parametrize("bad", [{"evaluation_interval": "soon"}, {"resend_delay": "0"}, {"x": 1}])
def test_bad_settings_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RulesConfig.model_validate(bad)
