"""One media socket's final transcript segments, from arrival until they are stored or journaled.

A session puts each final here; the queue's writer task hands what is waiting to the process's
`FinalsWriter` (streaming/storage.py), in arrival order. While the database cannot take them it
retries, and once more than MAX_BUFFERED_FINALS wait it spills them to the local journal
(streaming/journal.py), which the runtime's replayer stores later. Whatever goes wrong, the socket
keeps its finals and its writer: an error other than the database's is logged (rate-limited) and
retried like an outage, never left to end the task. Finals of a call that was deleted are dropped
and counted: nothing of that call can be stored any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, deque
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError

from calls import services
from streaming import journal, metrics, runtime
from streaming.socket_log import SocketLog
from streaming.storage import finals_writer

logger = logging.getLogger(__name__)

STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
DRAIN_TIMEOUT = 5.0  # how long a closing socket waits for its finals to be stored before journaling them


class QueuedFinal(NamedTuple):
    """A final waiting to be stored (it names the stream it arrived on: a later metadata packet may
    start a new subscription before it is stored), and when it arrived, for the store-latency metric."""

    final: services.Final
    received_monotonic: float


class FinalsQueue:
    def __init__(self, call_id: uuid.UUID, log: SocketLog) -> None:
        self.call_id = call_id
        self.log = log
        self.waiting: deque[QueuedFinal] = deque()
        self.call_deleted = False  # learnt from the database: from then on finals are dropped
        self._ready = asyncio.Event()
        self._closing = False
        self._failing_since: float | None = None
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.ensure_future(self._write())

    def put(self, final: services.Final) -> None:
        if self.call_deleted:
            metrics.finals_dropped.labels(services.Outcome.CALL_DELETED).inc()
            return
        self.waiting.append(QueuedFinal(final, time.monotonic()))
        metrics.final_buffer_depth.inc()
        self._ready.set()

    async def close(self) -> None:
        """Store what is waiting, for up to DRAIN_TIMEOUT (less when the database is down), then journal the rest."""
        self._closing = True
        self._ready.set()
        try:
            if self._writer is not None:
                await asyncio.wait([self._writer], timeout=DRAIN_TIMEOUT)
            if self.waiting:
                await self._spill()
        finally:
            if self._writer is not None:
                self._writer.cancel()

    def note_call_deleted(self) -> None:
        """The call is gone: nothing this socket receives can be stored any more. Its finals are
        dropped (and counted) from now on, until ACS closes the socket; the process and every
        other socket carry on."""
        if not self.call_deleted:
            self.call_deleted = True
            logger.warning("call %s: the call was deleted; its media socket's finals are dropped", self.call_id)
        if self.waiting:
            metrics.finals_dropped.labels(services.Outcome.CALL_DELETED).inc(len(self.waiting))
            metrics.final_buffer_depth.dec(len(self.waiting))
            self.waiting.clear()

    def spill_now(self) -> None:
        """Journal what is waiting without awaiting, for when the closing task is being cancelled."""
        if not self.waiting:
            return
        pending, self.waiting = list(self.waiting), deque()
        try:
            journal.append(journal.entry_for(queued.final) for queued in pending)
        except OSError as error:
            logger.error("call %s: %d final segments lost: %s", self.call_id, len(pending), error)
            return
        self._journaled(len(pending))

    async def _write(self) -> None:
        while not (self._closing and not self.waiting):
            await self._ready.wait()
            self._ready.clear()
            try:
                await self._store_waiting()
            except Exception as error:  # a bug: keep the finals and this task, try again shortly
                self.log.problem("storing final segments failed (%r); retrying", error)
                self._failing_since = self._failing_since or time.monotonic()
                self._ready.set()
                await asyncio.sleep(STORE_RETRY_DELAYS[-1])
            if self._closing and self._failing_since is not None:
                return  # the database is down: close() journals the rest

    async def _store_waiting(self) -> None:
        """Store waiting finals in arrival order, in batches (one thread hop each), retrying while they
        cannot be stored and journaling once more than MAX_BUFFERED_FINALS are waiting."""
        attempt = 0
        while self.waiting:
            batch = list(self.waiting)
            try:
                results = await finals_writer.store([queued.final for queued in batch])
            except Exception as error:
                self._failing_since = self._failing_since or time.monotonic()
                if self._closing:
                    return
                if len(self.waiting) > settings.MAX_BUFFERED_FINALS:
                    await self._spill()
                delay = STORE_RETRY_DELAYS[min(attempt, len(STORE_RETRY_DELAYS) - 1)]
                attempt += 1
                reason = error if isinstance(error, DatabaseError) else repr(error)
                self.log.problem("final segments not stored yet (%s); retrying in %.1f s", reason, delay)
                await asyncio.sleep(delay)
                continue
            self._forget_stored(batch, results)
            if self._failing_since is not None:
                logger.warning("call %s: final segments stored again", self.call_id)
                self._failing_since = None
                runtime.replayer.wake()
            attempt = 0

    def _forget_stored(self, batch: list[QueuedFinal], results: list[services.FinalResult]) -> None:
        now = time.monotonic()
        stored, dropped = 0, Counter()
        for queued, result in zip(batch, results, strict=True):
            # A spill, or learning that the call was deleted, may have emptied the queue meanwhile
            # (and counted what it took).
            still_queued = bool(self.waiting) and self.waiting[0] is queued
            if still_queued:
                self.waiting.popleft()
                metrics.final_buffer_depth.dec()
            if result.outcome is services.Outcome.STORED:
                stored += 1
                metrics.final_store_seconds.observe(now - queued.received_monotonic)
            elif result.dropped and still_queued:
                dropped[result.outcome] += 1
        if stored:
            metrics.finals_stored.inc(stored)
        for outcome, count in dropped.items():
            metrics.finals_dropped.labels(outcome).inc(count)
        if any(result.outcome is services.Outcome.CALL_DELETED for result in results):
            self.note_call_deleted()

    async def _spill(self) -> None:
        """Move every waiting final to the journal (durably) and out of memory."""
        pending, self.waiting = list(self.waiting), deque()
        entries = [journal.entry_for(queued.final) for queued in pending]
        try:
            await asyncio.get_running_loop().run_in_executor(None, journal.append, entries)
        except OSError as error:
            self.waiting.extendleft(reversed(pending))
            logger.error("call %s: %d final segments could not be journaled: %s", self.call_id, len(pending), error)
            return
        self._journaled(len(pending))

    def _journaled(self, count: int) -> None:
        metrics.final_buffer_depth.dec(count)
        metrics.finals_journaled.inc(count)
        logger.warning("call %s: %d final segments journaled until the database is back", self.call_id, count)
        runtime.replayer.wake()
