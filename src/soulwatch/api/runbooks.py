"""The rule pack's runbooks, served at ``/docs/runbooks.md`` so alert links open.

The Soulcaster rules point their ``runbook_url`` at ``docs/runbooks.md#<alert>``
(a relative link, so the same files work under Prometheus). Notifications
make such links absolute against ``external_url``; this page is what they
open: the packaged runbooks rendered as HTML, each section with the anchor
the rules use.
"""

from __future__ import annotations

import html
import re
from functools import cache
from importlib.resources import files

from markdown_it import MarkdownIt

#: Where the rule pack's relative ``runbook_url`` resolves under ``external_url``.
RUNBOOKS_PATH = "/docs/runbooks.md"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}code{{background:#f2f2f2;padding:0 .2em}}h2{{border-top:1px solid #ddd;
padding-top:1rem}}</style></head>
<body>
{body}
</body></html>
"""


def anchor(heading: str) -> str:
    """The anchor of a heading: lower case, punctuation dropped, spaces as ``-``."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


@cache
def runbooks_html(preset: str = "soulcaster") -> str:
    """The preset's runbooks as one HTML page (rendered once)."""
    text = files("soulwatch.presets").joinpath(preset, "runbooks.md").read_text(encoding="utf-8")
    md = MarkdownIt("commonmark", {"html": False})
    tokens = md.parse(text)
    title = "Runbooks"
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and i + 1 < len(tokens):
            heading = tokens[i + 1].content
            token.attrSet("id", anchor(heading))
            if token.tag == "h1":
                title = heading
    body = md.renderer.render(tokens, md.options, {})
    return _PAGE.format(title=html.escape(title), body=body)
