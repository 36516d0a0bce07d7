"""Automatic recovery: run a named action when an alert starts firing, page only if it fails.

An alert names an action with its ``action`` label or annotation; the action
(an HTTP request or a local command, see :class:`~soulwatch.alerting.config.ActionConfig`)
runs once when the alert starts firing, subject to a cooldown and a maximum
number of attempts per firing episode. The dispatcher holds the alert's
notifications back for ``verify_after``; if it still fires then, the page
goes out saying "auto-recovery tried at HH:MM, failed". Every run is written
to an audit log in SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import httpx

from soulwatch.alerting.config import ActionConfig
from soulwatch.alerts import Alert
from soulwatch.clock import Clock
from soulwatch.exceptions import StorageError

ACTION_KEY = "action"


class ActionOutcome(Enum):
    """How one action run ended."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # cooldown or attempts exhausted


@dataclass(frozen=True)
class ActionRun:
    """One entry of the audit log."""

    action: str
    fingerprint: str
    alertname: str
    started_at: float
    outcome: ActionOutcome
    detail: str

    def note(self, verify_after: float) -> str:
        """The line added to the page when the alert still fires after the action."""
        hhmm = datetime.fromtimestamp(self.started_at, UTC).strftime("%H:%M")
        return (
            f"auto-recovery tried at {hhmm} UTC ({self.action}: {self.outcome.value}"
            f"{', ' + self.detail if self.detail else ''}), failed: still firing"
            f" after {verify_after:g}s"
        )


def action_name(alert: Alert) -> str | None:
    """The action an alert names, if any."""
    return alert.labels.get(ACTION_KEY) or alert.annotations.get(ACTION_KEY) or None


class ActionRunner:
    """Runs actions with cooldown and attempt limits and keeps the audit log."""

    def __init__(
        self,
        actions: list[ActionConfig],
        *,
        db_path: str | Path,
        clock: Clock,
        client: httpx.AsyncClient,
    ) -> None:
        self._actions = {a.name: a for a in actions}
        self._clock = clock
        self._client = client
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS action_audit (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " action TEXT, fingerprint TEXT, alertname TEXT, episode REAL, started_at REAL,"
                " outcome TEXT, detail TEXT)"
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the action audit log {db_path}: {exc}") from exc

    def close(self) -> None:
        """Close the audit database."""
        self._db.close()

    def config_for(self, alert: Alert) -> ActionConfig | None:
        """The configured action ``alert`` names (``None`` if it names none or an unknown one)."""
        name = action_name(alert)
        return self._actions.get(name) if name else None

    def should_run(self, alert: Alert) -> bool:
        """Whether the alert's action may run now (cooldown and max attempts)."""
        action = self.config_for(alert)
        if action is None:
            return False
        now = self._clock.time()
        with self._lock:
            attempts = self._db.execute(
                "SELECT COUNT(*) FROM action_audit WHERE action=? AND fingerprint=?"
                " AND episode=? AND outcome != 'skipped'",
                (action.name, alert.fingerprint, alert.starts_at),
            ).fetchone()[0]
            last_any = self._db.execute(
                "SELECT MAX(started_at) FROM action_audit WHERE action=? AND fingerprint=?"
                " AND outcome != 'skipped'",
                (action.name, alert.fingerprint),
            ).fetchone()[0]
        if attempts >= action.max_attempts:
            return False
        # The cooldown spans episodes: a flapping alert must not hammer the action.
        return last_any is None or now - float(last_any) >= action.cooldown

    async def run(self, alert: Alert) -> ActionRun:
        """Run the alert's action now and log it (the caller checked :meth:`should_run`)."""
        action = self.config_for(alert)
        if action is None:
            raise KeyError(action_name(alert) or "")
        started = self._clock.time()
        try:
            outcome, detail = await asyncio.wait_for(self._execute(action), timeout=action.timeout)
        except TimeoutError:
            outcome, detail = ActionOutcome.FAILED, f"timed out after {action.timeout:g}s"
        entry = ActionRun(action.name, alert.fingerprint, alert.name, started, outcome, detail)
        with self._lock:
            self._db.execute(
                "INSERT INTO action_audit (action, fingerprint, alertname, episode, started_at,"
                " outcome, detail) VALUES (?,?,?,?,?,?,?)",
                (
                    action.name,
                    alert.fingerprint,
                    alert.name,
                    alert.starts_at,
                    started,
                    outcome.value,
                    detail,
                ),
            )
        return entry

    async def _execute(self, action: ActionConfig) -> tuple[ActionOutcome, str]:
        if action.http is not None:
            h = action.http
            try:
                response = await self._client.request(
                    h.method, h.url, headers=h.headers, content=h.body.encode() if h.body else None
                )
            except httpx.HTTPError as exc:
                return ActionOutcome.FAILED, f"{type(exc).__name__}: {exc}"
            ok = 200 <= response.status_code < 300
            return (
                ActionOutcome.OK if ok else ActionOutcome.FAILED
            ), f"HTTP {response.status_code}"
        assert action.command is not None
        try:
            proc = await asyncio.create_subprocess_exec(
                *action.command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            return ActionOutcome.FAILED, f"cannot start {action.command[0]}: {exc.strerror}"
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode == 0:
            return ActionOutcome.OK, "exit 0"
        tail = err.decode(errors="replace").strip()[-200:]
        return ActionOutcome.FAILED, f"exit {proc.returncode}" + (f": {tail}" if tail else "")

    def audit(self, limit: int = 100) -> list[ActionRun]:
        """The most recent runs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT action, fingerprint, alertname, started_at, outcome, detail"
                " FROM action_audit ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [ActionRun(r[0], r[1], r[2], float(r[3]), ActionOutcome(r[4]), r[5]) for r in rows]
