"""Who is using the console: bearer tokens, login sessions, and CSRF tokens.

With tokens configured (``auth.tokens``) a person logs in by pasting a token;
the console keeps a server-side session and sets an ``HttpOnly``,
``SameSite=Strict`` cookie holding only the session's random id. Reading
then needs a session or a bearer token when ``auth.reads`` is ``token``;
writing (silences, acknowledgements) needs a token with the ``silences`` or
``admin`` scope. Without tokens the console is open (the listener stays on
127.0.0.1 by default) and says so on every page.

Every form carries a CSRF token that must match the session's (or, when
nobody is logged in, a random ``HttpOnly`` cookie's: the double-submit
pattern), so another site cannot make a browser post to the console.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from soulwatch.api.auth import Authenticator, Principal
from soulwatch.clock import Clock
from soulwatch.config import Scope

SESSION_COOKIE = "soulwatch_session"
CSRF_COOKIE = "soulwatch_csrf"
#: Sessions kept at most; the oldest is dropped beyond this (memory stays bounded).
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    """One login."""

    id: str
    principal: Principal
    csrf: str
    expires: float


@dataclass(frozen=True)
class Visitor:
    """Who is behind one request, and what they may do."""

    principal: Principal | None
    csrf: str
    session: Session | None
    #: No tokens are configured: the console is open to whoever reaches it.
    open: bool
    #: Reads need a login (``auth.reads: token``).
    reads_need_login: bool
    #: A CSRF cookie to set on the response (first visit without a session).
    new_csrf_cookie: bool = False

    @property
    def can_read(self) -> bool:
        """Whether pages may be shown."""
        return self.open or not self.reads_need_login or self.principal is not None

    def can(self, scope: Scope) -> bool:
        """Whether this visitor may act with ``scope``."""
        if self.open:
            return True
        return self.principal is not None and self.principal.allows(scope)

    @property
    def name(self) -> str:
        """Who to record as the author of a silence or an acknowledgement."""
        return self.principal.name if self.principal else ""


class Sessions:
    """Login sessions in memory (a restart logs everybody out)."""

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal) -> Session:
        """A new session for ``principal``."""
        now = self._clock.time()
        session = Session(
            secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32), now + self.lifetime
        )
        with self._lock:
            for sid in [k for k, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[sid]
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session.id] = session
        return session

    def get(self, sid: str) -> Session | None:
        """The live session with id ``sid``."""
        with self._lock:
            session = self._sessions.get(sid)
        if session is None or session.expires <= self._clock.time():
            return None
        return session

    def drop(self, sid: str) -> None:
        """Log out."""
        with self._lock:
            self._sessions.pop(sid, None)


def visitor(request: Request, auth: Authenticator, sessions: Sessions, has_tokens: bool) -> Visitor:
    """Identify the request: bearer token first, then the session cookie."""
    session = sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    principal = auth.identify(request) or (session.principal if session else None)
    if session is not None:
        csrf, new = session.csrf, False
    else:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        csrf, new = (cookie, False) if len(cookie) >= 32 else (secrets.token_urlsafe(32), True)
    return Visitor(
        principal=principal,
        csrf=csrf,
        session=session,
        open=not has_tokens,
        reads_need_login=not auth.reads_open,
        new_csrf_cookie=new,
    )


def csrf_ok(visitor: Visitor, presented: str) -> bool:
    """Whether a form's CSRF token is the visitor's (constant time)."""
    if visitor.new_csrf_cookie or not presented:
        return False
    return hmac.compare_digest(visitor.csrf.encode(), presented.encode())


def set_cookies(response: Response, visitor: Visitor, *, secure: bool) -> None:
    """Set the CSRF cookie of a first visit."""
    if visitor.new_csrf_cookie:
        response.set_cookie(
            CSRF_COOKIE, visitor.csrf, httponly=True, samesite="strict", secure=secure, path="/"
        )


def set_session_cookie(response: Response, session: Session, *, secure: bool) -> None:
    """The login cookie: the session id only, HttpOnly, SameSite=Strict."""
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
        max_age=None,
    )
