"""Translate Go (RE2) regular-expression syntax into Python's ``re`` syntax.

PromQL regexes are RE2. Most of RE2 reads the same in Python; the
differences that real queries hit are handled here:

- inline flags such as ``(?i)`` in the middle of a pattern apply to the rest
  of the enclosing group in RE2, but are an error in Python unless they open
  the whole pattern; they become a scoped group ``(?i:...)``;
- POSIX classes ``[[:alpha:]]`` inside brackets, which Python lacks;
- ``\\z`` (end of text), which Python spells ``\\Z``.
"""

from __future__ import annotations

import re

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


def translate(pattern: str) -> str:
    """The Python ``re`` spelling of RE2 ``pattern`` (unchanged if already compatible)."""
    out: list[str] = []
    # For each open group, the scoped-flag groups opened inside it, which
    # close together with it.
    scoped: list[list[str]] = [[]]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            pair = pattern[i : i + 2]
            out.append("\\Z" if pair == "\\z" else pair)
            i += 2
            continue
        if ch in "*+?{" and out and _ends_with_repeat("".join(out[-2:])):
            # RE2 rejects "a**" or "a*+" (Python 3.11 reads "*+" as possessive).
            lazy = ch == "?"
            if not lazy:
                raise re.error(f"invalid nested repetition operator: `{out[-1][-1]}{ch}`")
        if ch == "[":
            end, text = _char_class(pattern, i)
            out.append(text)
            i = end
            continue
        if ch == "(":
            flags_end = _inline_flags_end(pattern, i)
            if flags_end:
                flags = pattern[i + 2 : flags_end].replace("U", "")
                if flags and flags != "-":
                    out.append(f"(?{flags}:")
                    scoped[-1].append(flags)
                i = flags_end + 1
                continue
            scoped.append([])
            out.append(ch)
            i += 1
            continue
        if ch == ")" and len(scoped) > 1:
            out.append(")" * len(scoped.pop()))
            out.append(ch)
            i += 1
            continue
        if ch == "|" and scoped[-1]:
            # In RE2 the flags reach over '|' to the end of the group.
            flags_open = "".join(f"(?{f}:" for f in scoped[-1])
            out.append(")" * len(scoped[-1]) + "|" + flags_open)
            i += 1
            continue
        out.append(ch)
        i += 1
    out.append(")" * len(scoped[0]))
    return "".join(out)


def _ends_with_repeat(previous: str) -> bool:
    """Whether the output so far ends with an unescaped repetition operator."""
    if not previous or previous[-1] not in "*+?}":
        return False
    if len(previous) >= 2 and previous[-2] == "\\":
        return False
    # "x{2}" ends a counted repetition only if a '{' opened it; "}" alone is literal.
    return previous[-1] != "}" or "{" in previous


def _inline_flags_end(pattern: str, i: int) -> int:
    """Index of the ``)`` closing a ``(?flags)`` group starting at ``i``, else 0."""
    if not pattern.startswith("(?", i):
        return 0
    j = i + 2
    while j < len(pattern) and pattern[j] in "imsU-":
        j += 1
    if j > i + 2 and j < len(pattern) and pattern[j] == ")":
        return j
    return 0


def _char_class(pattern: str, start: int) -> tuple[int, str]:
    """Copy a ``[...]`` class, expanding POSIX classes; returns (end, text)."""
    out = ["["]
    i = start + 1
    if pattern.startswith("^", i):
        out.append("^")
        i += 1
    if pattern.startswith("]", i):  # a leading ']' is a literal
        out.append("\\]")
        i += 1
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if pattern.startswith("[:", i):
            close = pattern.find(":]", i + 2)
            name = pattern[i + 2 : close] if close > 0 else ""
            negated = name.startswith("^")
            expansion = _POSIX_CLASSES.get(name.lstrip("^"))
            if expansion is not None and not negated:
                out.append(expansion)
                i = close + 2
                continue
        if ch == "[":
            out.append("\\[")  # Python warns about a bare '[' inside a class
            i += 1
            continue
        out.append(ch)
        i += 1
        if ch == "]":
            return i, "".join(out)
    return i, "".join(out)  # unterminated: let re report it
