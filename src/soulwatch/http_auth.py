"""How soulwatch authenticates to what it sends to: the keys prometheus.yml's clients share.

A ``remote_write`` entry, ``query.remote`` and an ``alerting.alertmanagers``
entry take the client settings of Prometheus's HTTP clients: one of
``basic_auth``, ``authorization`` or ``bearer_token(_file)``, ``tls_config``
and ``follow_redirects``. :class:`ClientSettings` declares and checks them once;
:func:`authorization_header` turns them into the ``Authorization`` header,
reading the ``*_file`` secrets when asked (so a rotated file is read again
on the next build).
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, model_validator

from soulwatch.exceptions import ConfigError
from soulwatch.sources.scrape.config import Authorization, BasicAuth, TLSConfig


class ClientSettings(BaseModel):
    """The HTTP client keys of an endpoint; at most one way to authenticate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    tls_config: TLSConfig | None = None
    follow_redirects: bool = True

    @model_validator(mode="after")
    def _one_auth(self) -> ClientSettings:
        ways = [
            self.basic_auth is not None,
            self.authorization is not None,
            bool(self.bearer_token or self.bearer_token_file),
        ]
        if sum(ways) > 1:
            raise ValueError("set at most one of basic_auth, authorization or bearer_token")
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        return self


def basic_credentials(username: str, password: str) -> str:
    """The value of a ``Basic`` ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def authorization_header(settings: ClientSettings, where: str) -> str | None:
    """The ``Authorization`` value the settings ask for, ``None`` when they ask none.

    A secret file that cannot be read is a :class:`ConfigError` naming
    ``where`` (e.g. ``remote_write 'central'``), the key and the path.
    """

    def secret(path: str, key: str) -> str:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {key} {path}: {exc.strerror}") from None

    if settings.basic_auth is not None:
        password = settings.basic_auth.password or ""
        if settings.basic_auth.password_file:
            password = secret(settings.basic_auth.password_file, "password_file")
        return basic_credentials(settings.basic_auth.username, password)
    if settings.authorization is not None:
        creds = settings.authorization.credentials or ""
        if settings.authorization.credentials_file:
            creds = secret(settings.authorization.credentials_file, "credentials_file")
        return f"{settings.authorization.type} {creds}".strip()
    if settings.bearer_token or settings.bearer_token_file:
        token = settings.bearer_token or ""
        if settings.bearer_token_file:
            token = secret(settings.bearer_token_file, "bearer_token_file")
        return f"Bearer {token}"
    return None
