"""Bearer-token authorisation: scopes, constant-time comparison, quiet failures.

Every write needs a token with the right scope (``admin`` may do anything);
reads need any valid token when ``auth.reads`` is ``token``. Tokens are
compared with :func:`hmac.compare_digest` against every configured token, so
the time taken does not reveal which prefix matched. A refused request is
logged with the method, path, client and reason, never with the token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import structlog
from starlette.requests import Request

from soulwatch.api.http import HttpError
from soulwatch.config import AuthConfig, Scope

_log = structlog.get_logger("soulwatch.api.auth")


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and scopes."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """Whether this token may act with ``scope``."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


class Authenticator:
    """Checks ``Authorization: Bearer`` headers against the configured tokens."""

    def __init__(self, config: AuthConfig) -> None:
        self.reads_open = config.reads == "open"
        self._tokens = [
            (t.secret().encode(), Principal(t.name, frozenset(t.scopes))) for t in config.tokens
        ]

    def identify(self, request: Request) -> Principal | None:
        """The principal of a valid bearer token, or ``None``."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        return self.check(presented)

    def check(self, presented: str) -> Principal | None:
        """The principal whose token is ``presented``, or ``None`` (a console login)."""
        given = presented.strip().encode()
        found: Principal | None = None
        for secret, principal in self._tokens:
            # No early exit: every token is compared, matched or not.
            if hmac.compare_digest(secret, given) and found is None:
                found = principal
        return found

    def require(self, request: Request, scope: Scope) -> Principal:
        """The principal, if it holds ``scope``; else 401/403 (and a log line)."""
        principal = self.identify(request)
        if principal is None:
            reason = "missing token" if "authorization" not in request.headers else "invalid token"
            self._refuse(request, reason, scope)
            raise _unauthorized(reason)
        if not principal.allows(scope):
            self._refuse(request, f"token {principal.name!r} lacks scope", scope)
            raise HttpError(403, f"this token does not have the {scope.value!r} scope")
        return principal

    def require_read(self, request: Request) -> Principal | None:
        """Allow a read: open, or any valid token when reads are protected."""
        principal = self.identify(request)
        if self.reads_open or principal is not None:
            return principal
        reason = "missing token" if "authorization" not in request.headers else "invalid token"
        self._refuse(request, reason, Scope.READ)
        raise _unauthorized(reason)

    @staticmethod
    def _refuse(request: Request, reason: str, scope: Scope) -> None:
        client = request.client.host if request.client else "-"
        _log.warning(
            "auth failed",
            method=request.method,
            path=request.url.path,
            client=client,
            reason=reason,
            scope=scope.value,
        )


def _unauthorized(reason: str) -> HttpError:
    return HttpError(
        401, f"authentication required ({reason})", headers={"WWW-Authenticate": "Bearer"}
    )
