"""asgiref's record of the event loop a `sync_to_async` worker thread was called from.

A domain function that runs in database_sync_to_async's thread publishes its live events through
that loop (streaming/events.py) instead of waiting for Redis in the thread, which would hold up every
database call of the process. asgiref keeps the loop in `SyncToAsync.threadlocal` for its own use.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading

from asgiref.sync import SyncToAsync

from compat import incompatible

RECORDS = ("self.threadlocal.main_event_loop = loop", "self.threadlocal.main_event_loop_pid = os.getpid()")


def calling_event_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this sync_to_async worker thread was called from, if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() else None


def check() -> None:
    if not isinstance(getattr(SyncToAsync, "threadlocal", None), threading.local):
        raise incompatible("asgiref", "SyncToAsync.threadlocal is not a threading.local")
    source = inspect.getsource(SyncToAsync)
    if not all(record in source for record in RECORDS):
        raise incompatible("asgiref", "SyncToAsync no longer records main_event_loop in its threadlocal")
