"""Alert delivery: routing, grouping, inhibition, silences, the outbox, notifiers, actions.

See ``docs/alerting.md``. The names below are the package's public API.
"""

from soulwatch.alerting.actions import ActionRunner
from soulwatch.alerting.config import AlertingConfig, load_config, parse_config
from soulwatch.alerting.dispatcher import META_ALERTNAME, Dispatcher
from soulwatch.alerting.export import export_alertmanager
from soulwatch.alerting.message import Notification
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.notifiers.factory import build_notifiers, integration_id
from soulwatch.alerting.outbox import DeliveryListener, ForwardingListener, Outbox
from soulwatch.alerting.routing import build_tree, receivers_for
from soulwatch.alerting.silences import GettableSilence, PostableSilence, SilenceStore

__all__ = [
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
