"""How a queue posts: credentials as headers, 307/308 followed, credentials kept to their host."""

from __future__ import annotations

import base64

from soulwatch.remote.config import RemoteWriteConfig
from soulwatch.remote.http import Poster
from tests.helpers import RecordedRequest, Recorder, Reply


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_a_307_is_followed_with_the_same_body_and_credentials() -> None:
    def moved(request: RecordedRequest) -> Reply:
        if request.path == "/old":
            return Reply(307, b"", {"Location": "/new"})
        return Reply(204, b"")

    with Recorder(handler=moved) as receiver:
        config = RemoteWriteConfig(
            url=receiver.url + "/old", basic_auth={"username": "sw", "password": "pw"}
        )
        poster = Poster(config)
        response = await poster.post(b"body", shard=3)
        await poster.aclose()
    assert response.status_code == 204
    old, new = receiver.received()
    assert (old.path, new.path) == ("/old", "/new")
    assert new.body == b"body"
    assert new.headers["authorization"] == _basic("sw", "pw")
    assert new.headers["content-encoding"] == "snappy"


async def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    with Recorder(default=Reply(204, b"")) as other:

        def moved(request: RecordedRequest) -> Reply:
            return Reply(308, b"", {"Location": other.url + "/write"})

        with Recorder(handler=moved) as receiver:
            config = RemoteWriteConfig(
                url=receiver.url + "/write", authorization={"credentials": "secret-token"}
            )
            poster = Poster(config)
            assert (await poster.post(b"x")).status_code == 204
            await poster.aclose()
    assert receiver.received()[0].headers["authorization"] == "Bearer secret-token"
    assert "authorization" not in other.received()[0].headers


async def test_no_redirect_is_followed_when_follow_redirects_is_off() -> None:
    with Recorder(default=Reply(307, b"", {"Location": "/elsewhere"})) as receiver:
        poster = Poster(RemoteWriteConfig(url=receiver.url + "/write", follow_redirects=False))
        assert (await poster.post(b"x")).status_code == 307
        await poster.aclose()
    assert [r.path for r in receiver.received()] == ["/write"]


async def test_credentials_in_the_url_become_basic_auth() -> None:
    with Recorder(default=Reply(204, b"")) as receiver:
        url = receiver.url.replace("http://", "http://sw%40x:p%3Aw@") + "/write"
        poster = Poster(RemoteWriteConfig(url=url))
        await poster.post(b"x")
        await poster.aclose()
    request = receiver.received()[0]
    assert request.path == "/write"
    assert request.headers["authorization"] == _basic("sw@x", "p:w")
