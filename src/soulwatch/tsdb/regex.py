"""Label regular expressions as Prometheus reads them: RE2 syntax, linear-time matching.

Prometheus matches label values with Go's ``regexp`` package, an RE2 engine:
no backtracking, so ``(a+)+$`` costs the same on any input, and no
look-around, back-references or counted repetitions above 1000. soulwatch
uses RE2 itself (the ``google-re2`` binding, part of the ``monitor`` extra) so
that a pattern accepted by one is accepted by the other, means the same, and
cannot stall the monitor.

As in Prometheus 3, a label regex is fully anchored and ``.`` matches a
newline (``^(?s:<pattern>)$``). Where C++ RE2 is more lenient than Go's
parser (``\\C``), the pattern is refused as Go refuses it, and error texts are
Go's, so ``soulwatch check rules`` prints what ``promtool`` prints.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Protocol

__all__ = ["CaptureMatch", "Regex", "RegexError", "compile_regex"]

# C++ RE2's error texts -> Go regexp/syntax's (what Prometheus reports).
_GO_MESSAGES = {
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
}

# Characters that make a pattern more than a literal string.
_META = frozenset("\\.+*?()|[]{}^$")

# Distinct label values remembered per pattern: values repeat across series,
# and a dictionary lookup is much cheaper than a call into RE2.
_MEMO_SIZE = 4096


class RegexError(re.error):
    """A pattern Prometheus would refuse; the message is Go's (``error parsing regexp: ...``)."""

    def __init__(self, message: str, pattern: str) -> None:
        super().__init__(f"error parsing regexp: {message}")
        self.pattern = pattern


class CaptureMatch(Protocol):
    """A successful match with its groups (what ``label_replace`` expands)."""

    def group(self, index: int | str, /) -> str | None:
        """The text of group ``index`` (a number or a name), ``None`` if it did not take part."""
        ...


class Regex:
    """A compiled label regex: :meth:`fullmatch` says whether a whole value matches."""

    __slots__ = ("_anchor", "_captures", "_literals", "_memo", "_native", "pattern")

    def __init__(self, pattern: str) -> None:
        re2 = _re2_module()
        self.pattern = pattern
        _check_go_syntax(pattern)
        options = re2.Options()
        options.log_errors = False  # errors are raised, not written to stderr
        options.dot_nl = True  # Prometheus 3: (?s)
        options.never_capture = True
        # The binding's C++ object, called directly: its Python match API
        # decodes offsets and builds objects, five times the cost of a match.
        self._native: Any = re2._re2.RE2(pattern.encode("utf-8", "surrogatepass"), options)
        if not self._native.ok():
            raise _go_error(self._native.error(), pattern)
        self._anchor: Any = re2._re2.RE2.Anchor.ANCHOR_BOTH
        self._captures: Any = None
        self._memo: dict[str, bool] = {}
        # Alternations of plain strings ("api|web") are the commonest patterns;
        # a set lookup answers them exactly.
        self._literals: frozenset[str] | None = None
        if not _META.intersection(pattern):
            self._literals = frozenset(pattern.split("|"))

    def fullmatch(self, value: str) -> bool:
        """Whether all of ``value`` matches the pattern."""
        if self._literals is not None:
            return value in self._literals
        hit = self._memo.get(value)
        if hit is None:
            data = value.encode("utf-8", "surrogatepass")
            hit = self._native.Match(self._anchor, data, 0, len(data))[0][0] >= 0
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[value] = hit
        return hit

    def capture(self, value: str) -> CaptureMatch | None:
        """The match of all of ``value`` with its groups, or ``None``."""
        if self._captures is None:
            re2 = _re2_module()
            options = re2.Options()
            options.log_errors = False
            options.dot_nl = True
            self._captures = re2.compile(self.pattern, options)
        match: CaptureMatch | None = self._captures.fullmatch(value)
        return match

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Regex:
    """The compiled form of ``pattern``; raises :class:`RegexError` where Prometheus would."""
    return Regex(pattern)


def _re2_module() -> Any:
    try:
        import re2
    except ImportError as exc:
        from soulwatch.exceptions import MissingExtraError

        raise MissingExtraError("google-re2", "monitor") from exc
    return re2


def _go_error(text: str | bytes, pattern: str) -> RegexError:
    """Go's wording of a C++ RE2 error such as ``invalid perl operator: (?=``."""
    message = text.decode(errors="replace") if isinstance(text, bytes) else text
    code, _, arg = message.partition(": ")
    if code == "invalid perl operator" and arg.startswith("(?<"):
        # Go reads "(?<" as a named group (Go 1.22+), so a look-behind is a bad name.
        rest = pattern[max(pattern.find(arg), 0) :]
        end = rest.find(">")
        group = rest if end < 0 else rest[: end + 1]
        return RegexError(f"invalid named capture: `{group}`", pattern)
    return RegexError(f"{_GO_MESSAGES.get(code, code)}: `{arg}`", pattern)


def _check_go_syntax(pattern: str) -> None:
    """Refuse what Go's parser refuses but C++ RE2 accepts: the ``\\C`` (any byte) escape."""
    i = 0
    while i < len(pattern) - 1:
        if pattern[i] != "\\":
            i += 1
            continue
        escaped = pattern[i + 1]
        if escaped == "Q":  # \Q...\E is literal text
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return
            i = end + 2
            continue
        if escaped == "C":
            raise RegexError("invalid escape sequence: `\\C`", pattern)
        i += 2
