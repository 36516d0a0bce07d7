"""Real peers for end-to-end and compatibility tests: ``soulwatch run``, Prometheus, Alertmanager.

Each starts as a subprocess on 127.0.0.1, is waited for until its
``/-/ready`` answers 200 (60 s at most: these binaries replay a WAL or load
rules first), yields its base URL, and is stopped when the block ends.
A port may be chosen beforehand, for a config that must name a peer before
it runs (Prometheus sending alerts to soulwatch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import (
    Recorder,
    free_port,
    need_binary,
    soulwatch_command,
    started,
    subprocess_env,
)

#: How long a peer may take to become ready.
READY_TIMEOUT = 60.0


def ready_at(base: str, path: str = "/-/ready") -> Callable[[], bool]:
    """Whether ``base + path`` answers 200 now."""
    return lambda: httpx.get(base + path, timeout=1).status_code == 200


@contextlib.contextmanager
def soulwatch_peer(
    config: Path | str,
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``soulwatch run -c config`` listening on ``port`` (free if not given); yields its URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = soulwatch_command("run", "-c", str(config), "--listen", f"127.0.0.1:{port}")
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    with started(
        argv,
        env=subprocess_env(**(env or {})),
        cwd=None if cwd is None else str(cwd),
        ready=ready_at(url),
        timeout=READY_TIMEOUT,
    ):
        yield url


@contextlib.contextmanager
def prometheus_peer(
    config: Path | str,
    data_dir: Path,
    *,
    port: int | None = None,
    cwd: Path | None = None,
    flags: Sequence[str] = (),
) -> Iterator[str]:
    """A real ``prometheus`` with ``config`` and its TSDB in ``data_dir``; yields its URL."""
    binary = need_binary("prometheus")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
    ]
    cwd_text = None if cwd is None else str(cwd)
    with started(argv, cwd=cwd_text, ready=ready_at(url), timeout=READY_TIMEOUT):
        yield url


@contextlib.contextmanager
def alertmanager_peer(config: Path, data_dir: Path, *, port: int | None = None) -> Iterator[str]:
    """A real ``prometheus-alertmanager``, clustering off; yields its URL."""
    binary = need_binary("prometheus-alertmanager")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with started(argv, ready=ready_at(url), timeout=READY_TIMEOUT):
        yield url


def pager_alerting(hook: str) -> str:
    """The ``alerting`` section of a soulwatch.yaml paging ``hook + "/page"`` at once:
    grouped by alert name, no wait, a 1 s group interval (to append to a config)."""
    return (
        "alerting:\n"
        "  route:\n"
        "    receiver: pager\n"
        "    group_by: [alertname]\n"
        "    group_wait: 0s\n"
        "    group_interval: 1s\n"
        "    repeat_interval: 1h\n"
        "  receivers:\n"
        "    - name: pager\n"
        "      webhook_configs:\n"
        f"        - url: {hook}/page\n"
    )


def pages(hook: Recorder, alertname: str, status: str, path: str = "/page") -> list[Any]:
    """The webhook bodies ``hook`` received at ``path`` about ``alertname`` with ``status``."""
    return [
        body
        for r in hook.received(path)
        if (body := r.json())["status"] == status
        and body["commonLabels"].get("alertname") == alertname
    ]
