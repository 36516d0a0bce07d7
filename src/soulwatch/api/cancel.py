"""Blocking work that stops once nobody waits for it: past its timeout, or its client gone.

A query handed to the monitor's runner keeps a worker thread until it ends.
:func:`run_until_unwanted` gives it a :class:`threading.Event` to look at
(the PromQL engine's ``cancel``) and sets it as soon as the request's
timeout passes or its client disconnects (a closed browser tab, a proxy
giving up), so the worker is soon free for the next query.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from soulwatch.runner import BlockingRunner

_T = TypeVar("_T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready; nobody reads a reply."""


async def run_until_unwanted(
    runner: BlockingRunner,
    fn: Callable[[threading.Event], _T],
    timeout: float,
    request: Request | None = None,
) -> _T:
    """``fn(cancel)`` on ``runner``; ``cancel`` is set once the result is no longer wanted.

    Raises :class:`TimeoutError` past ``timeout`` seconds and :class:`ClientGone`
    when ``request``'s client disconnects first; ``fn``'s own errors pass through.
    """
    cancel = threading.Event()
    work = asyncio.ensure_future(asyncio.wait_for(runner(fn, cancel), timeout))
    watcher = asyncio.ensure_future(_gone(request)) if request is not None else None
    try:
        if watcher is not None:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                raise ClientGone()
        return await work
    finally:
        cancel.set()
        for task in (work, watcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _gone(request: Request) -> None:
    # After the request's body, the server's next message is its disconnect
    # (a GET's one empty body message is read and dropped here; nobody needs it).
    while (await request.receive())["type"] != "http.disconnect":
        pass
