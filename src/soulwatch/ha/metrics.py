"""The HA metrics, on the monitor's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class HaMetrics:
    """Whether this instance leads and notifies, whether Redis answers, lease renewals."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.leader = Gauge(
            "soulwatch_ha_leader",
            "1 while this instance holds the lease (it is the one that notifies).",
            registry=registry,
        )
        self.notifying = Gauge(
            "soulwatch_ha_notifying",
            "1 while this instance sends notifications: as leader, or alone while Redis "
            "is unreachable.",
            registry=registry,
        )
        self.redis_up = Gauge(
            "soulwatch_ha_redis_up",
            "1 when the last exchange with the coordinating Redis succeeded.",
            registry=registry,
        )
        self.renewals = Counter(
            "soulwatch_ha_lease_renewals",
            "Lease renewals by this instance, by result (ok, lost, error).",
            ["result"],
            registry=registry,
        )
        self.fencing_token = Gauge(
            "soulwatch_ha_fencing_token",
            "The fencing token of the lease this instance holds (0 when it holds none).",
            registry=registry,
        )
        self.takeovers = Counter(
            "soulwatch_ha_takeovers",
            "Times this instance took the lease.",
            registry=registry,
        )
        self.skipped = Counter(
            "soulwatch_ha_notifications_sent_by_peer",
            "Notifications this instance did not send because a peer already had.",
            registry=registry,
        )
