"""The errors soulwatch raises.

Every error carries the context a user needs to act on it (file, line, target,
whether retrying can help). Library code raises these; only :mod:`soulwatch.cli`
turns them into messages and exit codes.

::

    SoulwatchError
    ├── ConfigError              a config / rule / routing file is invalid (file, line, column)
    │   └── RuleFileError        a Prometheus rule file is invalid
    ├── MissingExtraError        an optional dependency is not installed (names the extra)
    ├── StorageError             the TSDB cannot store or read
    │   └── SeriesLimitError     a new series was rejected by a series limit
    ├── QueryError               a PromQL query cannot be run
    │   ├── ParseError           a syntax error (line, column, what was expected)
    │   ├── QueryLimitError      too many samples / past the timeout
    │   └── EvaluationError      a runtime error of evaluation (e.g. duplicate series)
    │       └── RemoteAnswerError  the remote query API refused (its ``errorType``)
    ├── ScrapeError              a target could not be scraped (target, reason)
    └── DeliveryError            a notification could not be delivered
        (``permanent`` says whether retrying can help; ``retry_after`` honours 429)
"""

from __future__ import annotations


class SoulwatchError(Exception):
    """Base of every error soulwatch raises on purpose."""


class ConfigError(SoulwatchError):
    """A configuration file is invalid; the position is part of the message."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = ":".join(
            str(part) for part in (self.file, self.line, self.column) if part is not None
        )
        return f"{where}: {self.reason}" if where else self.reason


class RuleFileError(ConfigError):
    """A Prometheus rule file is invalid."""


class MissingExtraError(SoulwatchError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{module!r} is not installed; install it with: pip install 'soulwatch[{extra}]'"
        )


class StorageError(SoulwatchError):
    """The storage could not complete an operation."""


class SeriesLimitError(StorageError):
    """A new series was rejected because a series limit was reached."""


class QueryError(SoulwatchError):
    """A PromQL query could not be run."""


class ParseError(QueryError):
    """A PromQL syntax error, with the 1-based line and column where it was found."""

    def __init__(self, message: str, *, line: int = 1, column: int = 1) -> None:
        self.reason = message
        self.line = line
        self.column = column
        super().__init__(f"{line}:{column}: parse error: {message}")


class QueryLimitError(QueryError):
    """A query was stopped because it would load too many samples or ran too long."""


class EvaluationError(QueryError):
    """A runtime error of evaluation, such as a many-to-many match."""


class RemoteAnswerError(EvaluationError):
    """The remote query API (ruler mode) answered with an error of its own.

    ``error_type`` is its ``errorType`` (``bad_data``, ``execution``...), so
    soulwatch's API can answer with the same.
    """

    def __init__(self, message: str, *, error_type: str) -> None:
        self.error_type = error_type
        super().__init__(message)


class ScrapeError(SoulwatchError):
    """A target could not be scraped."""

    def __init__(self, message: str, *, target: str) -> None:
        self.target = target
        super().__init__(f"{target}: {message}")


class DeliveryError(SoulwatchError):
    """A notification could not be delivered.

    ``permanent`` is true when retrying cannot help (bad URL, 4xx other than 429);
    ``retry_after`` is the delay the receiver asked for, in seconds, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)
