"""The sockets' database threads: every ORM call a media socket or a live feed makes runs here.

Channels' own `database_sync_to_async` runs every consumer's database work on one thread. In a
morning rush (two media sockets and a viewer or two opening per call, a hundred calls within
seconds) the sockets' queries queued on that thread past daphne's 5-second handshake limit, and
viewers were cut off before their first snapshot. SOCKET_DATABASE_THREADS threads share the work;
each borrows a pooled connection only while it runs, and Channels' wrapper returns it afterwards
(CONN_MAX_AGE=0), so they count SOCKET_DATABASE_THREADS against the pool (config/settings.py).

A socket's calls are awaited one after another, so its own queries stay in order; different
sockets' queries run side by side, which the domain functions they call allow (each is one
transaction, under the call's row lock where order matters).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_threads = ThreadPoolExecutor(max_workers=settings.SOCKET_DATABASE_THREADS, thread_name_prefix="socket-database")
_handshake_threads = ThreadPoolExecutor(
    max_workers=settings.SOCKET_HANDSHAKE_THREADS, thread_name_prefix="socket-handshake"
)


def database_sync_to_async(function: Callable[..., Any]) -> Callable[..., Any]:
    """Channels' `database_sync_to_async`, on the sockets' database threads rather than its single one."""
    return DatabaseSyncToAsync(function, thread_sensitive=False, executor=_threads)


class HandshakeTooLate(Exception):
    """daphne has refused the socket already: its handshake check waited past the limit and was not run."""


def handshake_sync_to_async(function: Callable[..., Any]) -> Callable[..., Any]:
    """The same, for the one check a socket's handshake waits on (whether it may connect at all), on
    threads of its own: behind a burst's other database work it outlasted daphne's 5-second limit.

    A check that reaches its thread more than WEBSOCKET_CONNECT_TIMEOUT after the consumer asked for it
    raises HandshakeTooLate instead of running: daphne, whose clock started a little earlier, has refused
    that socket by then, and in a burst the work done for sockets already gone kept the next ones waiting
    past their own limit (docs/performance.md, "Late-night runs")."""
    checked = DatabaseSyncToAsync(_unless_too_late(function), thread_sensitive=False, executor=_handshake_threads)

    async def check(*args: Any, **kwargs: Any) -> Any:
        return await checked(time.monotonic() + settings.WEBSOCKET_CONNECT_TIMEOUT, *args, **kwargs)

    return check


def _unless_too_late(function: Callable[..., Any]) -> Callable[..., Any]:
    def run(deadline: float, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() > deadline:
            raise HandshakeTooLate(function.__name__)
        return function(*args, **kwargs)

    return run
