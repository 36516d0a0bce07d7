"""Alert state and its history in SQLite, so a restart loses nothing.

After every evaluation of a group, each alerting rule's active instances
(pending, firing, recently resolved) replace the rule's rows in
``alert_state`` and every transition is appended to ``alert_transitions`` —
in one transaction for the whole group, so a ``kill -9`` at any instant
leaves either the state before or the state after that evaluation. WAL mode
keeps each commit cheap.

Threads: the rule manager writes through one connection (guarded by a lock,
so it may call from any thread); :meth:`AlertStateStore.history` reads
through a read-only connection of the calling thread. In WAL mode such a
reader sees the last committed evaluation, never half of one, and neither
waits for the writer nor blocks it — so the API reads history in a worker
thread while the evaluator writes on the event loop.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from soulwatch.alerts import AlertState
from soulwatch.exceptions import StorageError
from soulwatch.rules.state import ActiveAlert, Transition
from soulwatch.tsdb.model import Labels

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    state TEXT NOT NULL,
    active_at REAL NOT NULL,
    value REAL,
    fired_at REAL,
    resolved_at REAL,
    keep_firing_since REAL,
    last_sent_at REAL,
    PRIMARY KEY (rule, labels)
);
CREATE TABLE IF NOT EXISTS alert_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    rule TEXT NOT NULL,
    alertname TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    labels TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS alert_transitions_t ON alert_transitions (t);
CREATE TABLE IF NOT EXISTS rule_evaluations (
    rule TEXT PRIMARY KEY,
    last_evaluation REAL NOT NULL
);
"""

DEFAULT_FILENAME = "alerts.sqlite"

#: Label sets (and annotation sets) whose JSON text is kept for the next save.
_ENCODED_ENTRIES = 100_000


@dataclass(frozen=True)
class RuleSave:
    """One alerting rule's evaluation to save: its instances now and its transitions."""

    rule: str
    alerts: Iterable[ActiveAlert]
    transitions: Sequence[Transition]


def _labels_json(labels: Labels) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def _labels(text: str) -> Labels:
    return Labels(json.loads(text).items())


def _num(value: float) -> float | None:
    # SQLite stores NaN as NULL; keep that explicit.
    return None if math.isnan(value) else value


class AlertStateStore:
    """The SQLite database of alert state (``alerts.sqlite`` in the data directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # the write connection, and the reader registry
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        #: Why the last save failed (a full disk), ``None`` once one succeeds again.
        self.last_error: str | None = None
        self._encoded_labels: dict[Labels, str] = {}
        self._encoded_annotations: dict[tuple[tuple[str, str], ...], str] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across a process crash (kill -9) in WAL mode.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open alert state database {self.path}: {exc}") from exc

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> AlertStateStore:
        """The store at ``<data_dir>/alerts.sqlite``."""
        return cls(Path(data_dir) / DEFAULT_FILENAME)

    def close(self) -> None:
        """Close the database (every thread's read connection too)."""
        with self._lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read-only connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StorageError(f"alert state database {self.path} is closed")
            try:
                # check_same_thread=False only so close() may close it from its own thread;
                # it is used by this thread alone.
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read alert state database {self.path}: {exc}") from exc
            self._readers.append(conn)
        self._local.conn = conn
        return conn

    def load(self) -> dict[str, list[ActiveAlert]]:
        """Every rule's persisted instances, by rule key."""
        out: dict[str, list[ActiveAlert]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, labels, annotations, state, active_at, value, fired_at,"
                " resolved_at, keep_firing_since, last_sent_at FROM alert_state"
            ).fetchall()
        for rule, lbls, ann, state, active_at, value, fired, resolved, keep, sent in rows:
            out.setdefault(rule, []).append(
                ActiveAlert(
                    labels=_labels(lbls),
                    annotations=json.loads(ann),
                    state=AlertState(state),
                    active_at=active_at,
                    value=math.nan if value is None else value,
                    fired_at=fired,
                    resolved_at=resolved,
                    keep_firing_since=keep,
                    last_sent_at=sent,
                )
            )
        return out

    def last_evaluations(self) -> dict[str, float]:
        """When each rule was last evaluated before the restart."""
        with self._lock:
            rows = self._db.execute("SELECT rule, last_evaluation FROM rule_evaluations")
            return dict(rows.fetchall())

    def save(
        self,
        rule: str,
        alerts: Iterable[ActiveAlert],
        transitions: Sequence[Transition],
        evaluated_at: float,
    ) -> None:
        """Replace ``rule``'s instances and append its transitions, atomically."""
        self.save_many([RuleSave(rule, alerts, transitions)], evaluated_at)

    def save_many(self, saves: Sequence[RuleSave], evaluated_at: float) -> None:
        """Save several rules' evaluations (a group's) in one transaction.

        Each rule's instances replace its rows and its transitions are
        appended, as :meth:`save` does for one; either all of them are
        committed or none (one commit instead of one per rule).
        """
        if not saves:
            return
        try:
            with self._lock:
                state_rows = [row for save in saves for row in self._state_rows(save)]
                transition_rows = [
                    (
                        tr.t,
                        tr.rule,
                        tr.alertname,
                        tr.fingerprint,
                        self._labels_text(tr.labels),
                        tr.from_state.value,
                        tr.to_state.value,
                        _num(tr.value),
                    )
                    for save in saves
                    for tr in save.transitions
                ]
                rules = [(save.rule,) for save in saves]
                with self._transaction():
                    self._db.executemany("DELETE FROM alert_state WHERE rule = ?", rules)
                    self._db.executemany(
                        "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        state_rows,
                    )
                    self._db.executemany(
                        "INSERT INTO alert_transitions"
                        " (t, rule, alertname, fingerprint, labels, from_state, to_state, value)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        transition_rows,
                    )
                    self._db.executemany(
                        "INSERT OR REPLACE INTO rule_evaluations VALUES (?, ?)",
                        [(save.rule, evaluated_at) for save in saves],
                    )
        except sqlite3.Error as exc:
            self.last_error = f"cannot save alert state: {exc}"
            names = ", ".join(save.rule for save in saves)
            raise StorageError(f"cannot save alert state of {names}: {exc}") from exc
        self.last_error = None

    def _state_rows(self, save: RuleSave) -> list[tuple[object, ...]]:
        rule = save.rule
        return [
            (
                rule,
                self._labels_text(a.labels),
                self._annotations_text(a.annotations),
                a.state.value,
                a.active_at,
                _num(a.value),
                a.fired_at,
                a.resolved_at,
                a.keep_firing_since,
                a.last_sent_at,
            )
            for a in save.alerts
        ]

    def _labels_text(self, labels: Labels) -> str:
        # The same instances are saved every evaluation: their labels' JSON is
        # looked up rather than encoded again (a dict lookup against json.dumps).
        text = self._encoded_labels.get(labels)
        if text is None:
            if len(self._encoded_labels) >= _ENCODED_ENTRIES:
                self._encoded_labels.clear()
            text = self._encoded_labels[labels] = _labels_json(labels)
        return text

    def _annotations_text(self, annotations: dict[str, str]) -> str:
        key = tuple(annotations.items())
        text = self._encoded_annotations.get(key)
        if text is None:
            if len(self._encoded_annotations) >= _ENCODED_ENTRIES:
                self._encoded_annotations.clear()
            text = json.dumps(annotations, sort_keys=True)
            self._encoded_annotations[key] = text
        return text

    def history(
        self, *, limit: int = 100, alertname: str | None = None, since: float | None = None
    ) -> list[Transition]:
        """Transitions, newest first (from any thread; see the module docstring)."""
        where: list[str] = []
        params: list[object] = []
        if alertname is not None:
            where.append("alertname = ?")
            params.append(alertname)
        if since is not None:
            where.append("t >= ?")
            params.append(since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        try:
            rows = (
                self._reader()
                .execute(
                    "SELECT t, rule, alertname, labels, from_state, to_state, value"
                    f" FROM alert_transitions {clause} ORDER BY t DESC, id DESC LIMIT ?",
                    (*params, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read alert history from {self.path}: {exc}") from exc
        return [
            Transition(
                t=t,
                rule=rule,
                alertname=name,
                labels=_labels(lbls),
                from_state=AlertState(old),
                to_state=AlertState(new),
                value=math.nan if value is None else value,
            )
            for t, rule, name, lbls, old, new, value in rows
        ]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
