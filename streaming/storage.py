"""What a daphne process writes to the database for all its media sockets together.

`FinalsWriter` stores final transcript segments on one thread of its own, many sockets' finals per
transaction; `StreamCounters` writes every open stream's counters in one statement per interval.
Writing per socket instead cost a thread hop, a transaction and several round trips each, and under
load the thread's contention with the event loop for the GIL made every store slow
(docs/performance.md). Sockets queue, retry and journal their own finals (streaming/finals_queue.py);
streaming/runtime.py starts both on the process's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

from calls import services
from streaming.database import database_sync_to_async

logger = logging.getLogger(__name__)


class StreamCounters:
    """Every socket's stream counters not yet in the database, written for the whole process in one
    statement every STREAM_STATS_INTERVAL. A write per socket instead cost ~10 % of a core at 100 calls
    and stalled the event loop (docs/performance.md). A closing socket takes its stream's share back
    and writes it with the stream's closing, so a closed stream's counts are complete."""

    def __init__(self) -> None:
        self.pending: dict[int, Counter[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def add(self, stream_id: int, counters: Counter[str]) -> None:
        self.pending.setdefault(stream_id, Counter()).update(counters)

    def take(self, stream_id: int) -> Counter[str]:
        return self.pending.pop(stream_id, Counter())

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(settings.STREAM_STATS_INTERVAL)
            await self.write()

    async def write(self) -> None:
        pending, self.pending = self.pending, {}
        if not pending:
            return
        try:
            await database_sync_to_async(services.add_stream_counters)(pending)
        except DatabaseError as error:
            for stream_id, counters in pending.items():
                self.add(stream_id, counters)
            self._failures += 1
            if self._failures <= 5 or self._failures % 100 == 0:
                logger.warning(
                    "Stream counters of %d streams not saved yet (kept for the next try): %s", len(pending), error
                )
        else:
            self._failures = 0


stream_counters = StreamCounters()


class _Request(NamedTuple):
    finals: list[services.Final]
    done: asyncio.Future[list[services.FinalResult]]


class FinalsWriter:
    """Stores every media socket's final segments for this process, on one thread of its own.

    Finals that arrive while a store is running go together in the next one: one statement for many
    calls' finals (`services.store_finals`). Few database round trips per final matter twice over:
    each costs the database time, and after each the writer thread must win the GIL back from the
    busy event loop, which is what made stores slow under load (docs/performance.md).
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finals-writer")
        self._store = sync_to_async(_store_together, thread_sensitive=False, executor=self._executor)
        self._waiting: list[_Request] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def store(self, finals: list[services.Final]) -> list[services.FinalResult]:
        """Store `finals` (in order) together with whatever else is waiting; what became of each.

        Raises when they could not be stored (the database is unreachable, or an unexpected error
        with these finals): nothing is lost, and storing them again skips what did get stored.
        """
        self.ensure_running()  # started by the runtime; this covers code that stores without it (tests of the writer)
        request = _Request(finals, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._wake.set()
        return await request.done

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._waiting = [request for request in self._waiting if request.done.get_loop() is loop]
            self._wake = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        requests: list[_Request] = []
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._waiting:
                    requests, self._waiting = [r for r in self._waiting if not r.done.done()], []
                    try:
                        outcomes = await self._store([request.finals for request in requests])
                    except Exception as error:  # _store_together returns its errors: this is a bug, not data
                        outcomes = [error] * len(requests)
                    for request, outcome in zip(requests, outcomes, strict=True):
                        if request.done.done():
                            continue
                        if isinstance(outcome, BaseException):
                            request.done.set_exception(outcome)
                        else:
                            request.done.set_result(outcome)
                    requests = []
        finally:  # cancelled (the server is stopping): whoever still waits retries, or journals
            for request in requests + self._waiting:
                if not request.done.done():
                    request.done.set_exception(DatabaseError("the finals writer stopped"))
            self._waiting = []


def _store_together(requests: list[list[services.Final]]) -> list[list[services.FinalResult] | Exception]:
    """In the writer's thread: every request's finals in one `services.store_finals`. It stores what
    it can and raises only when the database cannot be used: then every request fails alike and is
    retried. Any other exception is one request's trouble: each is stored on its own, so the others
    still land and only that one fails.

    The thread keeps its one database connection from one store to the next while it works (no
    health check, a round trip per store; with a connection pool, one slot kept for this, the
    hottest path) and drops it after any error (back to the pool, or closed), so the next store
    starts on a fresh one.
    """
    try:
        results = services.store_finals([final for finals in requests for final in finals])
    except DatabaseError as error:
        _drop_connection()
        return [error] * len(requests)
    except Exception as error:
        _drop_connection()
        if len(requests) == 1:
            return [error]
        return [_store_alone(finals) for finals in requests]
    outcomes, start = [], 0
    for finals in requests:
        outcomes.append(results[start : start + len(finals)])
        start += len(finals)
    return outcomes


def _store_alone(finals: list[services.Final]) -> list[services.FinalResult] | Exception:
    try:
        return services.store_finals(finals)
    except Exception as error:
        _drop_connection()
        return error


def _drop_connection() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


finals_writer = FinalsWriter()
