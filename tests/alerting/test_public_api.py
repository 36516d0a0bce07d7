"""The alerting package's public names are a reviewed list."""

from __future__ import annotations

import soulwatch.alerting


def test_public_api_is_locked():
    assert soulwatch.alerting.__all__ == [
        "META_ALERTNAME",
        "ActionRunner",
        "AlertingConfig",
        "DeliveryListener",
        "Dispatcher",
        "ForwardingListener",
        "GettableSilence",
        "Notification",
        "Notifier",
        "Outbox",
        "PostableSilence",
        "SilenceStore",
        "build_notifiers",
        "build_tree",
        "export_alertmanager",
        "integration_id",
        "load_config",
        "parse_config",
        "receivers_for",
    ]
    for name in soulwatch.alerting.__all__:
        assert getattr(soulwatch.alerting, name).__doc__ or name == "META_ALERTNAME"
