"""Which GitHub issue belongs to which alert group, kept in the delivery database.

The GitHub notifier comments on and closes the issue it opened for a group;
this index finds that issue again after a restart without a search.
"""

from __future__ import annotations

from soulwatch.alerting.delivery_db import DeliveryDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS github_issues (
    repository TEXT NOT NULL,
    group_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (repository, group_id)
);
"""


class GitHubIssueIndex:
    """The :class:`~soulwatch.alerting.notifiers.github.IssueIndex` in SQLite."""

    def __init__(self, db: DeliveryDatabase) -> None:
        self._db = db

    def get_issue(self, repository: str, group_id: str) -> int | None:
        """The issue of an alert group, if one was opened."""
        rows = self._db.read(
            "SELECT number FROM github_issues WHERE repository=? AND group_id=?",
            (repository, group_id),
        )
        return int(rows[0][0]) if rows else None

    def put_issue(self, repository: str, group_id: str, number: int) -> None:
        """Remember the issue of an alert group."""
        with self._db.transaction("record a GitHub issue") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO github_issues VALUES (?,?,?)",
                (repository, group_id, number),
            )
