"""A real ``soulwatch run`` with a RUM site, for the intake and browser tests."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, soulwatch_command, started, subprocess_env, wait_until

KEY = "dash-public-key-1"


def rum_config(origin: str, **rum: Any) -> str:
    """The ``rum:`` section with one site, ``dashboard``, whose pages come from ``origin``."""
    extra = "".join(f"  {k}: {v}\n" for k, v in rum.items())
    return (
        textwrap.dedent(
            f"""\
            rum:
              interval: 1s
              sites:
                - name: dashboard
                  key: {KEY}
                  origins: ["{origin}"]
                  routes: ["/", "/slow", "/crash", "/module", "/clusters/[id]",
                           "/api/clusters", "/api/broken"]
            """
        )
        + extra
    )


@contextlib.contextmanager
def monitor(tmp_path: Path, config: str, **env: str) -> Iterator[httpx.Client]:
    """``soulwatch run`` with ``config`` (YAML; ``listen`` is added); a client on its API."""
    listen = free_port()
    base = f"http://127.0.0.1:{listen}"
    path = tmp_path / "soulwatch.yaml"
    path.write_text(f"listen: 127.0.0.1:{listen}\ndata_dir: data\n" + config)
    ready = lambda: httpx.get(f"{base}/-/ready", timeout=1).status_code == 200  # noqa: E731
    argv = soulwatch_command("run", "-c", str(path))
    with (
        started(argv, env=subprocess_env(**env), cwd=str(tmp_path), ready=ready, timeout=30),
        httpx.Client(base_url=base, timeout=10) as api,
    ):
        yield api


@contextlib.contextmanager
def rum_monitor(tmp_path: Path, origin: str, **rum: Any) -> Iterator[httpx.Client]:
    """``soulwatch run`` with the RUM intake; yields a client on its API."""
    with monitor(tmp_path, rum_config(origin, **rum)) as api:
        yield api


def value(api: httpx.Client, expr: str) -> float | None:
    """The single value of an instant query, or None when it is empty."""
    body = api.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_value(api: httpx.Client, expr: str, expected: float, timeout: float = 20) -> None:
    """Wait until ``expr`` answers ``expected``."""
    wait_until(lambda: value(api, expr) == expected, timeout=timeout, what=f"{expr} == {expected}")
