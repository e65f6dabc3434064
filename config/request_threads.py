"""Django's synchronous middleware and views run on threads kept from one request to the next.

Left to itself, asgiref gives each request (Django's ThreadSensitiveContext) a single-thread executor
of its own, so it starts a thread for every request and another to join it when the request ends. Each
`Thread.start` holds the event loop until the new thread has run, which on a busy core takes
milliseconds: in a burst of calls, every webhook held up every call's audio and live transcript that
way (docs/performance.md). Here a request borrows an idle thread through asgiref's public
`ThreadSensitiveContext(executor=...)` and gives it back. A request still waits for its request slot
on its thread (config/database_pool.py): taking the slot on the event loop instead cost a burst's
callers more than a second, in the loop turns around each view. So there are as many threads as
requests at the busiest moment, and up to IDLE_THREADS_KEPT stay for the next burst.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

IDLE_THREADS_KEPT = 128


class RequestThreads:
    """ASGI middleware around Django's HTTP application."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        thread = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.application(scope, receive, send)
        except BaseException:
            # A request cancelled (its client gone) can leave its view running: the thread is lent again
            # only once the view has finished.
            await asyncio.shield(asyncio.wrap_future(thread.submit(lambda: None)))
            raise
        finally:
            if len(self._idle) < IDLE_THREADS_KEPT:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)
