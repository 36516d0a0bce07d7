"""Prometheus relabeling: ``relabel_configs`` and ``metric_relabel_configs``.

Semantics follow Prometheus: the regex is fully anchored, source label values
are joined with the separator, ``replacement`` is expanded with Go's ``$1`` /
``${name}`` rules, a replace that yields an empty value removes the target
label, and a ``keep``/``drop`` decides whether the whole series survives.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from soulwatch.sources.scrape.config import RelabelConfig

_EXPAND = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class _Step:
    cfg: RelabelConfig
    regex: re.Pattern[str]


class Relabeler:
    """A compiled list of relabel steps, applied with :meth:`process`."""

    def __init__(self, configs: Sequence[RelabelConfig]) -> None:
        self._steps = [_Step(c, re.compile(c.regex)) for c in configs]

    def __bool__(self) -> bool:
        return bool(self._steps)

    def process(self, labels: dict[str, str]) -> dict[str, str] | None:
        """The relabeled labels, or ``None`` if the series is dropped. ``labels`` is not changed."""
        lb = dict(labels)
        for step in self._steps:
            if not _apply(step, lb):
                return None
        return {k: v for k, v in lb.items() if v != ""}


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``; ``$$`` is a dollar."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except (IndexError, KeyError):
            return ""
        return value or ""

    return _EXPAND.sub(sub, template)


def _apply(step: _Step, lb: dict[str, str]) -> bool:
    cfg = step.cfg
    action = cfg.action
    if action in ("labeldrop", "labelkeep"):
        for name in list(lb):
            hit = step.regex.fullmatch(name) is not None
            if hit == (action == "labeldrop"):
                del lb[name]
        return True
    if action == "labelmap":
        for name, value in list(lb.items()):
            m = step.regex.fullmatch(name)
            if m is not None:
                lb[_expand(cfg.replacement, m)] = value
        return True
    value = cfg.separator.join(lb.get(n, "") for n in cfg.source_labels)
    if action == "keep":
        return step.regex.fullmatch(value) is not None
    if action == "drop":
        return step.regex.fullmatch(value) is None
    if action in ("keepequal", "dropequal"):
        equal = value == lb.get(cfg.target_label or "", "")
        return equal if action == "keepequal" else not equal
    target_label = cfg.target_label or ""
    if action in ("lowercase", "uppercase"):
        lb[target_label] = value.lower() if action == "lowercase" else value.upper()
        return True
    if action == "hashmod":
        digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
        lb[target_label] = str(int.from_bytes(digest[8:], "big") % (cfg.modulus or 1))
        return True
    # replace
    m = step.regex.fullmatch(value)
    if m is None:
        return True
    target = _expand(target_label, m)
    if not _LABEL_NAME.match(target):
        return True
    result = _expand(cfg.replacement, m)
    if result == "":
        lb.pop(target, None)
    else:
        lb[target] = result
    return True
