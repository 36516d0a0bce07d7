"""The monitor's alert path: the rules' sink, the current dispatcher, its notifiers and actions.

:class:`AlertPath` is what the rule manager sends alerts to, for the life
of the monitor. A reload that changes routing reconfigures the dispatcher
behind it in place (:meth:`AlertPath.prepare` builds the new parts first, so a
bad one changes nothing): unchanged routes keep their aggregation groups and
unchanged receivers keep their notifiers. It also serves the API's receivers
view, and wraps every notifier in :class:`LoggedNotifier`, so each delivery
attempt is one log event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.actions import ActionRunner
from soulwatch.alerting.config import AlertingConfig
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.message import Notification
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.notifiers.factory import build_notifiers, integration_id
from soulwatch.alerting.notifiers.soulcaster import EvidenceSource
from soulwatch.alerting.outbox import Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.alerts import Alert
from soulwatch.api.context import JSONDict
from soulwatch.api.views import OutboxView
from soulwatch.clock import Clock
from soulwatch.exceptions import DeliveryError
from soulwatch.runner import BlockingRunner

if TYPE_CHECKING:
    from soulwatch.components import Tasks

# The standard library's logger, so the events carry ``extra`` fields (soulwatch.log_setup).
_log = logging.getLogger("soulwatch.alerting")

#: Given the notifiers built for a routing, the ones the outbox uses (scenario runs record them).
NotifierWrapper = Callable[[Mapping[str, Notifier]], Mapping[str, Notifier]]


class LoggedNotifier:
    """A :class:`Notifier` that logs every attempt: sent, failed (will retry) or gave up.

    Each event names the receiver, the integration and the fingerprints of
    the alerts it carried, so one alert can be followed through the log.
    """

    def __init__(self, inner: Notifier) -> None:
        self._inner = inner

    async def notify(self, notification: Notification) -> None:
        """Send through the wrapped notifier, logging the outcome."""
        fields: dict[str, object] = {
            "receiver": notification.receiver,
            "integration": notification.integration,
            "status": notification.status.value,
            "fingerprints": [a.fingerprint for a in notification.alerts],
        }
        try:
            await self._inner.notify(notification)
        except DeliveryError as exc:
            event = "notification gave up" if exc.permanent else "notification failed"
            _log.warning(event, extra={"error": str(exc), "http_status": exc.status, **fields})
            raise
        except Exception as exc:
            # Not the notifier's transport error: a bug, which the outbox deals with.
            _log.warning(
                "notification failed", extra={"error": f"{type(exc).__name__}: {exc}", **fields}
            )
            raise
        _log.info("notification sent", extra=fields)


@dataclass(frozen=True)
class DeliveryParts:
    """What :meth:`AlertPath.prepare` builds for one routing, before anything runs."""

    routing: AlertingConfig | None
    notifiers: dict[str, Notifier]
    actions: ActionRunner | None
    #: what each receiver's notifiers were built from (see :func:`_receiver_settings`)
    settings: dict[str | None, object]


class AlertPath:
    """The rules' alert sink: forwards to the current dispatcher (none without routing)."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        silences: SilenceStore,
        clock: Clock,
        client: httpx.AsyncClient,
        data_dir: Path,
        runner: BlockingRunner,
        wrap_notifiers: NotifierWrapper | None = None,
        acks: AckStore | None = None,
        evidence: EvidenceSource | None = None,
    ) -> None:
        self._acks = acks
        self._evidence = evidence
        self._outbox = outbox
        self._silences = silences
        self._clock = clock
        self._client = client
        self._data_dir = data_dir
        self._runner = runner
        self._wrap = wrap_notifiers
        self._tasks: Tasks | None = None
        self._notifiers: dict[str, Notifier] = {}
        self._settings: dict[str | None, object] = {}
        self.routing: AlertingConfig | None = None
        self.dispatcher: Dispatcher | None = None
        self.actions: ActionRunner | None = None

    def prepare(self, routing: AlertingConfig | None) -> DeliveryParts:
        """The notifiers and action runner of ``routing``; raises before anything runs."""
        if routing is None:
            return DeliveryParts(None, {}, None, {})
        notifiers = build_notifiers(
            routing,
            client=self._client,
            clock=self._clock,
            issue_index=self._outbox.issues,
            evidence=self._evidence,
        )
        # The caller's wrapper sees the notifiers themselves (a scenario run
        # recognises the SMTP one); the log wraps whatever it returns.
        inner = self._wrap(notifiers) if self._wrap is not None else notifiers
        wrapped: dict[str, Notifier] = {k: LoggedNotifier(n) for k, n in inner.items()}
        # A receiver configured as before keeps its notifiers, and their state.
        settings = _receiver_settings(routing)
        for name in _unchanged(self._settings, settings):
            for kind, index, _ in routing.receiver(name).integrations():
                key = integration_id(name, kind, index)
                if key in self._notifiers and key in wrapped:
                    wrapped[key] = self._notifiers[key]
        actions = None
        old = self.routing
        if self.actions is not None and old is not None and routing.actions == old.actions:
            # Unchanged: the running one goes on (its cooldowns in memory too).
            return DeliveryParts(routing, wrapped, self.actions, settings)
        if routing.actions:
            # Built last: it opens the action audit log, which a later failure would leak.
            actions = ActionRunner(
                routing.actions,
                db_path=self._data_dir / "actions.sqlite",
                clock=self._clock,
                client=self._client,
            )
        return DeliveryParts(routing, wrapped, actions, settings)

    def install(self, routing: AlertingConfig | None, parts: DeliveryParts) -> None:
        """Put ``parts`` in place (the dispatcher's loop starts with :meth:`start`)."""
        self.routing = routing
        self.actions = parts.actions
        if routing is None:
            self.dispatcher = None
            return
        self._notifiers = dict(parts.notifiers)
        self._settings = parts.settings
        self._outbox.use_notifiers(parts.notifiers)
        self.dispatcher = Dispatcher(
            routing,
            clock=self._clock,
            outbox=self._outbox,
            silences=self._silences,
            actions=parts.actions,
            acks=self._acks,
        )

    def start(self, tasks: Tasks) -> None:
        """Run the dispatcher's loop as one of ``tasks``."""
        self._tasks = tasks
        if self.dispatcher is not None:
            tasks.spawn("dispatcher", self.dispatcher.run)

    async def replace(self, routing: AlertingConfig | None, parts: DeliveryParts) -> None:
        """Route by a new routing (``parts`` from :meth:`prepare`).

        With routing before and after, the dispatcher is reconfigured in place
        (see :meth:`Dispatcher.reconfigure`); otherwise it is made or removed.
        """
        if self.dispatcher is not None and routing is not None:
            old_actions = self.actions
            self._notifiers = dict(parts.notifiers)
            self._settings = parts.settings
            self._outbox.use_notifiers(parts.notifiers)
            await self.dispatcher.reconfigure(routing, actions=parts.actions)
            self.routing = routing
            self.actions = parts.actions
            if old_actions is not None and old_actions is not parts.actions:
                await self._runner(old_actions.close)
            return
        # The old one first: its aclose() only detaches callbacks that are still
        # its own, so the new dispatcher must register after it.
        await self.aclose()
        self.install(routing, parts)
        if self._tasks is not None:
            self.start(self._tasks)

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Hand ``alerts`` to the dispatcher; without routing they show in the API only."""
        if self.dispatcher is not None:
            await self.dispatcher.send(alerts)

    def receivers(self) -> list[JSONDict]:
        """The API's receivers with their delivery status (empty without routing)."""
        if self.routing is None:
            return []
        return OutboxView(self.routing, self._outbox).receivers()

    async def aclose(self) -> None:
        """Detach the dispatcher, let its running actions finish, stop its loop."""
        if self.dispatcher is not None:
            await self.dispatcher.aclose()
        if self._tasks is not None:
            await self._tasks.cancel("dispatcher")
        if self.actions is not None:
            await self._runner(self.actions.close)
            self.actions = None


def _receiver_settings(routing: AlertingConfig) -> dict[str | None, object]:
    """What each receiver's notifiers are built from, by receiver name.

    Under ``None``: what every notifier reads from outside its receiver
    (``global``, ``delivery``). Each includes the contents of the secret
    files it names, read now: a rotated secret is a change.
    """
    out: dict[str | None, object] = {None: (_settings(routing.global_, routing), routing.delivery)}
    for receiver in routing.receivers:
        out[receiver.name] = _settings(receiver, routing)
    return out


def _unchanged(old: dict[str | None, object], new: dict[str | None, object]) -> list[str]:
    """The receivers whose notifiers can be kept: built from the same settings."""
    if None not in old or old[None] != new[None]:
        return []
    return [name for name, value in new.items() if name is not None and old.get(name) == value]


def _settings(model: BaseModel, config: AlertingConfig) -> tuple[str, tuple[bytes | None, ...]]:
    """``model``'s settings and the contents of the files its ``*_file`` settings name."""
    dump = model.model_dump(mode="json")
    files: list[bytes | None] = []

    def visit(value: object) -> None:
        if isinstance(value, dict):
            for key, item in sorted(value.items()):
                if key.endswith("_file") and isinstance(item, str):
                    path = Path(item) if Path(item).is_absolute() else config.base_dir / item
                    try:
                        files.append(path.read_bytes())
                    except OSError:
                        files.append(None)
                else:
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(dump)
    return json.dumps(dump, sort_keys=True), tuple(files)
