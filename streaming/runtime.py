"""The work a process does for all its media sockets together, started once per event loop by
config/asgi.py (`start`), under daphne and under the tests' communicators alike.

- the event-loop lag monitor, the overload signal sockets read to shed audio (streaming/metrics.py);
- the journal replayer, which stores journaled finals when the process starts serving, when a
  socket finds the database back, and every `JournalReplayer.INTERVAL` seconds while journal files exist;
- the finals writer and the stream counters, the process's database writes (streaming/storage.py);
- the shutdown: on SIGTERM daphne stops the Twisted reactor, whose "before shutdown" trigger runs
  `_shut_down` before connections drop. From then on new media sockets are refused and /readyz says
  503; every live session closes (stores its finals, journaling what cannot be stored, and flushes
  its counters and audio); then every remaining task is cancelled, and a media consumer cancelled
  while the process shuts down closes its socket with 4001 so ACS reconnects elsewhere.
  daphne's own trigger, which cancels every application, fails when a connection has no
  application (an idle keep-alive, a port probe), so this one does that job too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Protocol

from compat import twisted
from streaming import journal, metrics
from streaming.database import database_sync_to_async
from streaming.storage import finals_writer, stream_counters

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 20.0  # keep systemd's TimeoutStopSec above this


class LiveSession(Protocol):
    """A media session (streaming/session.py), as far as the runtime needs one: to close it at shutdown."""

    async def close(self) -> None: ...


_shutting_down = False
_sessions: weakref.WeakSet[LiveSession] = weakref.WeakSet()
_shutdown_hooked_on: object = None  # the reactor the shutdown trigger is registered with


def start() -> None:
    """Start the process-wide work on the running event loop; again on a new loop (each test has its own)."""
    global _shutdown_hooked_on
    metrics.loop_lag.ensure_running()
    replayer.ensure_running()
    stream_counters.ensure_running()
    finals_writer.ensure_running()
    reactor = twisted.running_reactor()  # None outside daphne: nothing to hook the shutdown into
    if reactor is not None and _shutdown_hooked_on is not reactor:
        twisted.before_shutdown(reactor, _shut_down)
        _shutdown_hooked_on = reactor


def shutting_down() -> bool:
    return _shutting_down


def begin_shutdown() -> None:
    """Refuse new media sockets and report not ready, while open ones finish storing."""
    global _shutting_down
    if not _shutting_down:
        logger.warning("Shutting down: media sockets store what they have and close")
    _shutting_down = True


def add_session(session: LiveSession) -> None:
    _sessions.add(session)


def remove_session(session: LiveSession) -> None:
    """Once a session has closed: a shutdown waits for sessions still closing."""
    _sessions.discard(session)


def _shut_down() -> object:
    """The reactor's "before shutdown" trigger: Twisted waits for the returned Deferred."""
    begin_shutdown()
    done = twisted.deferred_from(asyncio.ensure_future(_stop_everything()))
    return done.addErrback(lambda failure: logger.error("Shutdown did not finish cleanly: %s", failure.value))


async def _stop_everything() -> None:
    closing = [session.close() for session in list(_sessions)]
    if closing:
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), SHUTDOWN_TIMEOUT)
    await stream_counters.write()  # what a failed write kept; closed sockets wrote their own share
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()  # media consumers among them: they say goodbye (4001) when cancelled now
    if others:
        await asyncio.wait(others, timeout=5)


class JournalReplayer:
    """Stores journaled finals: when started, when woken (a socket stored finals again, or
    journaled some), and every INTERVAL seconds while journal files exist."""

    INTERVAL = 5.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if journal.pending_files():
                try:
                    replayed = await database_sync_to_async(journal.replay)()
                except Exception:
                    logger.exception("Finals journal replay failed")
                else:
                    if replayed:
                        metrics.finals_replayed.inc(replayed)
                        logger.warning("Stored %d journaled final segments", replayed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.INTERVAL)
            self._wake.clear()


replayer = JournalReplayer()
