"""The client settings remote_write, query.remote and alerting.alertmanagers share."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from soulwatch.exceptions import ConfigError
from soulwatch.http_auth import ClientSettings, authorization_header


def test_each_way_gives_its_header_reading_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    basic = ClientSettings.model_validate(
        {"basic_auth": {"username": "ann", "password_file": str(secret)}}
    )
    assert authorization_header(basic, "here") == "Basic " + base64.b64encode(b"ann:s3cret").decode(
        "ascii"
    )
    typed = ClientSettings.model_validate(
        {"authorization": {"type": "Token", "credentials_file": str(secret)}}
    )
    assert authorization_header(typed, "here") == "Token s3cret"
    bearer = ClientSettings.model_validate({"bearer_token": "abc"})
    assert authorization_header(bearer, "here") == "Bearer abc"
    assert authorization_header(ClientSettings(), "here") is None


def test_an_unreadable_secret_names_where_and_which_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    settings = ClientSettings.model_validate({"bearer_token_file": str(missing)})
    with pytest.raises(
        ConfigError, match=rf"remote_write 'central': cannot read bearer_token_file {missing}"
    ):
        authorization_header(settings, "remote_write 'central'")


@pytest.mark.parametrize(
    "raw",
    [
        {"bearer_token": "a", "basic_auth": {"username": "u", "password": "p"}},
        {"bearer_token": "a", "bearer_token_file": "/x"},
    ],
)
def test_two_ways_to_authenticate_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="set "):
        ClientSettings.model_validate(raw)
