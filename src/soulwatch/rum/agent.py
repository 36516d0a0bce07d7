"""The browser agent's script, assembled once from the files shipped in the package.

``agent.js`` (for a ``<script data-site=KEY>`` tag) and ``agent.mjs`` (an ES
module exporting ``init`` and ``reportError``) share the same core and the
vendored web-vitals build, so both report the same events.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Script:
    """One served script: its text, gzip form and entity tag."""

    body: bytes
    gzipped: bytes
    etag: str


def _read(name: str) -> str:
    text = resources.files("soulwatch.rum").joinpath("static", name).read_text("utf-8")
    # The vendored build points at a source map that is not shipped.
    return "\n".join(
        line for line in text.splitlines() if not line.startswith("//# sourceMappingURL")
    )


def _script(text: str) -> Script:
    body = text.encode()
    return Script(
        body, gzip.compress(body, 9, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    )


@cache
def tag_script() -> Script:
    """``/rum/v1/agent.js``: started by its own ``<script>`` tag."""
    parts = [_read("vendor/web-vitals.iife.js"), _read("agent-core.js"), _read("agent-tag.js")]
    return _script("(function () {\n" + "\n".join(parts) + "\n})();\n")


@cache
def module_script() -> Script:
    """``/rum/v1/agent.mjs``: ``import { init, reportError }``."""
    parts = [_read("vendor/web-vitals.iife.js"), _read("agent-core.js"), _read("agent-module.js")]
    return _script("\n".join(parts) + "\n")
