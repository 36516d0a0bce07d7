"""Inhibition: a firing source alert mutes matching target alerts.

As in Alertmanager, a target alert is inhibited by a rule when it matches the
rule's target matchers and some *firing* alert matches the source matchers
and has the same values for every ``equal`` label (a label missing on both
sides counts as equal). An alert never inhibits itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from soulwatch.alerting.config import InhibitRule
from soulwatch.alerting.matchers import matches
from soulwatch.alerts import Alert


class Inhibitor:
    """Answers whether an alert is inhibited by the currently firing alerts."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self._rules = list(rules)

    def inhibited_by(self, alert: Alert, firing: Iterable[Alert], now: float) -> Alert | None:
        """The first firing alert that inhibits ``alert``, or ``None``."""
        candidates = [a for a in firing if not a.is_resolved(now)]
        for rule in self._rules:
            if not matches(rule.target, alert.labels):
                continue
            for source in candidates:
                if source.labels == alert.labels:  # the same alert
                    continue
                if not matches(rule.source, source.labels):
                    continue
                if all(source.labels.get(n) == alert.labels.get(n) for n in rule.equal):
                    return source
        return None

    def is_source(self, alert: Alert) -> bool:
        """Whether ``alert`` matches the source side of any rule."""
        return any(matches(rule.source, alert.labels) for rule in self._rules)

    def is_inhibited(self, alert: Alert, firing: Iterable[Alert], now: float) -> bool:
        """Whether ``alert`` is muted by an inhibition rule."""
        return self.inhibited_by(alert, firing, now) is not None
