"""Folding URL paths into route templates, as Next.js names its routes.

``/clusters/[id]`` matches one segment in place of ``[id]``,
``/docs/[...slug]`` one or more, ``/shop/[[...slug]]`` zero or more. Every
other segment matches itself. A path matching no template folds into
``other``, which bounds the ``page`` and ``route`` labels by the templates.
"""

from __future__ import annotations

import re

OTHER = "other"

_DYNAMIC = re.compile(r"^\[([a-zA-Z_][a-zA-Z0-9_]*)\]$")
_CATCH_ALL = re.compile(r"^\[\.\.\.([a-zA-Z_][a-zA-Z0-9_]*)\]$")
_OPTIONAL_CATCH_ALL = re.compile(r"^\[\[\.\.\.([a-zA-Z_][a-zA-Z0-9_]*)\]\]$")
_STATIC = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$")


class RouteTemplate:
    """One template, compiled to a regular expression over the path."""

    __slots__ = ("pattern", "template")

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ValueError(f"route {template!r} must start with '/'")
        parts = [p for p in template.split("/") if p]
        regex = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if _DYNAMIC.match(part):
                regex += "/[^/]+"
            elif _CATCH_ALL.match(part) and last:
                regex += "/.+"
            elif _OPTIONAL_CATCH_ALL.match(part) and last:
                regex += "(?:/.+)?"
            elif _STATIC.match(part):
                regex += "/" + re.escape(part)
            else:
                raise ValueError(
                    f"route {template!r}: segment {part!r} is neither a name, [param], "
                    "nor a last [...param] / [[...param]]"
                )
        self.template = "/" + "/".join(parts)
        self.pattern = re.compile(regex + "/?")

    def matches(self, path: str) -> bool:
        """True when ``path`` is an instance of this template."""
        return self.pattern.fullmatch(path) is not None


class RouteFolder:
    """The first matching template of a list (static templates tried first)."""

    def __init__(self, templates: list[str]) -> None:
        compiled = [RouteTemplate(t) for t in templates]
        # A static template wins over a dynamic one, as in Next.js's router.
        compiled.sort(key=lambda t: ("[" in t.template, -len(t.template)))
        self._templates = compiled
        self._cache: dict[str, str] = {}

    def fold(self, path: str) -> str:
        """The template ``path`` belongs to, or ``other``."""
        hit = self._cache.get(path)
        if hit is not None:
            return hit
        folded = next((t.template for t in self._templates if t.matches(path)), OTHER)
        if len(self._cache) < 10_000:  # bounded: a flood of distinct paths costs only time
            self._cache[path] = folded
        return folded
