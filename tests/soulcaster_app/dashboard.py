"""What Soulcaster's Next.js dashboard serves at 676a625, and what it lets through unsigned.

Routes are the ``page.tsx`` and ``route.ts`` files under ``dashboard/app``
(route groups in parentheses do not appear in URLs); ``PUBLIC_PREFIXES`` and
the exact ``/`` are what ``dashboard/proxy.ts`` lets through without a
session (everything else is redirected to ``/auth/signin``).
"""

from __future__ import annotations

import re

PAGES = (
    "/",
    "/auth/signin",
    "/consent",
    "/privacy",
    "/sentry-example-page",
    "/dashboard",
    "/dashboard/clusters",
    "/dashboard/clusters/[id]",
    "/dashboard/feedback",
    "/dashboard/prs",
    "/settings/integrations",
    "/settings/projects",
)

API_ROUTES = (
    "/api/admin/trigger-poll",
    "/api/auth/[...nextauth]",
    "/api/billing/checkout",
    "/api/clusters",
    "/api/clusters/[id]",
    "/api/clusters/[id]/jobs",
    "/api/clusters/[id]/plan",
    "/api/clusters/[id]/start_fix",
    "/api/clusters/cleanup",
    "/api/clusters/jobs",
    "/api/clusters/reset",
    "/api/clusters/unclustered",
    "/api/config/github/repos",
    "/api/config/github/repos/[name]",
    "/api/config/reddit/subreddits",
    "/api/consent",
    "/api/debug/session",
    "/api/feedback",
    "/api/ingest/github/sync",
    "/api/ingest/github/sync/[name]",
    "/api/ingest/manual",
    "/api/jobs",
    "/api/jobs/[id]/job-logs",
    "/api/projects",
    "/api/sentry-example-api",
    "/api/stats",
)

PUBLIC_PREFIXES = (
    "/api/auth",
    "/auth/signin",
    "/consent",
    "/api/consent",
    "/privacy",
    "/_next",
    "/favicon.ico",
)


def _pattern(route: str) -> re.Pattern[str]:
    parts = []
    for segment in route.strip("/").split("/"):
        if segment.startswith("[..."):
            parts.append(".+")
        elif segment.startswith("["):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts) if parts != [""] else "/")


def serves(path: str) -> bool:
    """Whether a page or API route of the dashboard matches ``path``."""
    return any(_pattern(r).fullmatch(path) for r in (*PAGES, *API_ROUTES))


def public(path: str) -> bool:
    """Whether ``proxy.ts`` lets ``path`` through without a session."""
    return path == "/" or any(path.startswith(p) for p in PUBLIC_PREFIXES)
