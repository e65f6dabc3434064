"""Staff browsers' live feed: `ws/calls/` (every call) and `ws/calls/<id>/` (one call): a snapshot, then
the live events streaming/events.py publishes, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from calls import permissions
from compat import channels
from streaming import events, live, metrics
from streaming.database import HandshakeTooLate, database_sync_to_async, handshake_sync_to_async

logger = logging.getLogger(__name__)


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    """Staff browsers: `ws/calls/` (the live calls in the viewer's scope) and `ws/calls/<id>/` (one call
    in their scope, with intermediate text; a call out of scope is refused as one that does not exist).

    On connect a viewer gets a snapshot, then ordered deltas; on a call page each call and stream
    event is followed by a `view` message, the page's description of the call read afresh
    (`_follow_with_view`). `?after=<sequence>` (or a
    `{"type": "resume", "after": N}` message) resumes after the last delta a page saw. When a
    delta's number skips ahead (the channel layer dropped one), the gap is refilled from the database.

    The call list decides which events to send in memory, without a query per event: the viewer's
    scope (calls/permissions.py `Scope`) is read when it connects, and each call event carries the
    call's agents and callee. A call comes into the list the moment an agent of the viewer's joins it.

    The socket outlives the page load, so its session is re-checked every LIVE_SESSION_CHECK_SECONDS:
    after a logout, an expiry or a lost permission it closes with SESSION_ENDED (the page stops
    reconnecting); the scope is read afresh then too, and a call page whose call has left it closes
    with OUT_OF_SCOPE.
    """

    SESSION_ENDED = 4401
    OUT_OF_SCOPE = 4404

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels hops to its single database thread (aclose_old_connections) before every handler;
        # these touch the database only through database_sync_to_async, which closes connections itself.
        await channels.dispatch_without_database_hop(self, message)

    async def connect(self) -> None:
        self.session_key: str | None = self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        self.call_id: str | None = self.scope["url_route"]["kwargs"].get("call_id")
        client = (self.scope.get("client") or [None])[0]
        try:
            may_see = await handshake_sync_to_async(live.admit)(self.session_key, self.call_id, client)
        except HandshakeTooLate:  # daphne refused it meanwhile; the page will connect again
            may_see = None
        if may_see is None:
            await self.close()
            return
        self.may_see = may_see
        self.last_sequence = 0
        self.snapshots = 0  # snapshots and resyncs sent: a description read before the latest is stale
        self.view_sender: asyncio.Future[None] | None = None
        self.view_sent: asyncio.Future[Any] | None = None
        self.listed: set[str] = set()  # the list feed's calls in scope (bounded by the viewer's own calls)
        # Accepted before joining the group: the handshake has daphne's 5 seconds, and in a burst a
        # Redis subscription queues behind every other socket's. Nothing is missed meanwhile: the
        # snapshot is read after joining, and deltas it already holds are dropped by their numbers.
        await self.accept()
        group = events.call_group(self.call_id) if self.call_id else events.CALLS_GROUP
        await self.channel_layer.group_add(group, self.channel_name)
        self.group = group
        metrics.open_sockets.labels("live_feed").inc()
        self.session_check = asyncio.ensure_future(self._check_session_periodically())
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", [None])[0]
        await self._send_state(int(after) if after and after.isdigit() else None)

    async def send_json(self, content: Any, close: bool = False) -> None:
        """Send, unless the viewer has begun to leave. A page may close at any moment, even while its
        snapshot is read; until daphne sees the connection drop (and ignores sends itself) a send finds
        autobahn closing the socket and raises `Disconnected`, which went to the log as an error with a
        traceback. The message could go nowhere anyway, and the disconnect that follows ends the consumer."""
        with contextlib.suppress(Disconnected):
            await super().send_json(content, close=close)

    async def disconnect(self, code: int) -> None:
        self.view_sender = None  # descriptions still being read are not sent to a closed socket
        if hasattr(self, "session_check"):
            metrics.open_sockets.labels("live_feed").dec()
            self.session_check.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _check_session_periodically(self) -> None:
        """Every LIVE_SESSION_CHECK_SECONDS, the first time after a random part of it: viewers that
        connected together (every page reconnects after a restart) would otherwise check together,
        a burst of database work on the one database thread every interval."""
        interval = settings.LIVE_SESSION_CHECK_SECONDS
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 - jitter, not a secret
        while True:
            may_see = await database_sync_to_async(permissions.session_scope)(self.session_key)
            code = self.SESSION_ENDED if may_see is None else await self._rescope(may_see)
            if code is not None:
                with contextlib.suppress(Exception):  # the client may be gone already
                    await self.close(code=code)
                return
            await asyncio.sleep(interval)

    async def _rescope(self, may_see: permissions.Scope) -> int | None:
        """Take the viewer's scope as it is now: a call page out of it closes (the close code); a call
        list whose scope changed gets a fresh snapshot of the calls now in it."""
        if self.call_id:
            in_scope = await database_sync_to_async(live.call_in_scope)(self.call_id, may_see)
            return None if in_scope else self.OUT_OF_SCOPE
        if may_see != self.may_see:
            self.may_see = may_see
            await self._send_state(None)
        return None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resume" and isinstance(content.get("after"), int):
            await self._send_state(content["after"])

    async def live_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        metrics.live_latency_seconds.observe(time.time() - message.get("published_at", time.time()))
        if not self.call_id and not self._lists(event):
            return
        sequence = event.get("sequence")
        if not self.call_id or sequence is None:
            await self.send_json(event)  # the list feed and intermediate text: no per-call ordering
            return
        if sequence <= self.last_sequence:
            return  # already sent in a snapshot or a resync
        if sequence > self.last_sequence + 1:
            await self._send_state(self.last_sequence)
            if sequence <= self.last_sequence:
                return
        self.last_sequence = sequence
        await self.send_json(event)
        if event["type"] in ("call", "stream"):
            self._follow_with_view(sequence)

    def _follow_with_view(self, sequence: int) -> None:
        """After a call or stream event, send the call page's description read afresh (participants,
        gaps and audio included), so the page renders what a reload would. It follows as a message
        of its own: a transcript line behind the event never waits for that read, which in a burst
        of calls waits its turn on the sockets' database threads. Views go out in the order their
        events came, each once; one read before the latest snapshot is dropped (the snapshot has it)."""
        read = shared_call_view(self.call_id, sequence)
        self.view_sender = asyncio.ensure_future(self._send_view(self.view_sender, read, self.snapshots))

    async def _send_view(
        self, previous: asyncio.Future[None] | None, read: asyncio.Future[Any], snapshots: int
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            view = await asyncio.shield(read)
        except Exception:  # a database hiccup: the next event or reconnect brings the page up to date
            logger.warning("The description of call %s could not be read for a viewer", self.call_id, exc_info=True)
            return
        if view is None or read is self.view_sent or snapshots != self.snapshots or self.view_sender is None:
            return
        self.view_sent = read
        await self.send_json({"type": "view", "call_id": str(self.call_id), "view": view})

    def _lists(self, event: dict[str, Any]) -> bool:
        """Whether the call list sends the event, decided in memory: a call event carries the call's
        agents and callee (calls/live_events.py), and a segment or stream event goes where its call's did."""
        if self.may_see.all_calls:
            return True
        if event["type"] == "call":
            shown = self.may_see.includes(event["call"]["agent_ids"], event["call"]["callee"])
            (self.listed.add if shown else self.listed.discard)(event["call_id"])
            return shown
        return event["call_id"] in self.listed

    async def _send_state(self, after: int | None) -> None:
        self.snapshots += 1
        if self.call_id:
            state = await database_sync_to_async(live.call_state)(self.call_id, after)
            self.last_sequence = max(self.last_sequence, state["sequence"])
        else:
            state = await database_sync_to_async(live.calls_state)(self.may_see)
            self.listed = {call["id"] for call in state["calls"]}
        await self.send_json(state)


_views: dict[tuple[str, int], asyncio.Future[dict[str, Any] | None]] = {}
VIEW_KEPT_SECONDS = 5.0


class _ViewRead:
    """A read of a call's description, and whether its database thread has begun it: until then, an
    event that arrives may share it (the thread sets `begun`, the event loop alone keeps the table)."""

    def __init__(self, call_id: str) -> None:
        self.begun = False
        self.future: asyncio.Future[dict[str, Any] | None] = asyncio.ensure_future(
            database_sync_to_async(self._read)(call_id)
        )

    def _read(self, call_id: str) -> dict[str, Any] | None:
        self.begun = True  # from here on, a later event needs a read of its own
        return live.call_view(call_id)


_reads_not_begun: dict[str, _ViewRead] = {}


def shared_call_view(call_id: str, sequence: int) -> asyncio.Future[dict[str, Any] | None]:
    """The call page's description after the call's event `sequence`, read once per process however
    many of its viewers watch the call: a call nobody watches costs nothing, a call many watch one read.
    Kept a few seconds, long enough for every viewer of the process to be handed the event."""
    key = (call_id, sequence)
    read = _views.get(key)
    if read is None:
        read = _views[key] = _view_read_after_now(call_id)
        loop = asyncio.get_running_loop()
        read.add_done_callback(lambda _: loop.call_later(VIEW_KEPT_SECONDS, _views.pop, key, None))
    return read


def _view_read_after_now(call_id: str) -> asyncio.Future[dict[str, Any] | None]:
    """A read of the call's description that begins after now, so it shows at least every event
    received so far: the read still waiting for a database thread, if there is one, else a new one.

    When a hundred calls start together, each has a dozen call and stream events within seconds,
    and the sockets' database threads are busy: the events that arrive while one read waits share it,
    instead of queueing a read each (a newer description is as good: it is the whole page's state)."""
    waiting = _reads_not_begun.get(call_id)
    if waiting is not None and not waiting.begun:
        return waiting.future
    pending = _reads_not_begun[call_id] = _ViewRead(call_id)
    pending.future.add_done_callback(lambda _: _forget(call_id, pending))
    return pending.future


def _forget(call_id: str, read: _ViewRead) -> None:
    if _reads_not_begun.get(call_id) is read:
        del _reads_not_begun[call_id]
