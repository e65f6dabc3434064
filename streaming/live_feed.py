"""Staff browsers' live feed: `ws/calls/` (every call) and `ws/calls/<id>/` (one call): a snapshot, then
the live events streaming/events.py publishes, in order."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from calls import permissions
from compat import channels
from streaming import events, live, metrics
from streaming.database import database_sync_to_async


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    """Staff browsers: `ws/calls/` (the live calls in the viewer's scope) and `ws/calls/<id>/` (one call
    in their scope, with intermediate text; a call out of scope is refused as one that does not exist).

    On connect a viewer gets a snapshot, then ordered deltas. `?after=<sequence>` (or a
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
        # Channels hops to the database thread (aclose_old_connections) before every handler; a live
        # event needs no database unless it resyncs, which goes through database_sync_to_async anyway.
        if message["type"] == events.HANDLER_TYPE:
            await channels.dispatch_without_database_hop(self, message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(permissions.can_watch)(user):
            await self.close()
            return
        self.call_id: str | None = self.scope["url_route"]["kwargs"].get("call_id")
        self.last_sequence = 0
        self.may_see = await database_sync_to_async(permissions.scope_of)(user)
        self.listed: set[str] = set()  # the list feed's calls in scope (bounded by the viewer's own calls)
        group = events.call_group(self.call_id) if self.call_id else events.CALLS_GROUP
        client = (self.scope.get("client") or [None])[0]
        if not await database_sync_to_async(live.subscribe)(user, self.may_see, self.call_id, client):
            await self.close()
            return
        await self.channel_layer.group_add(group, self.channel_name)
        self.group = group
        await self.accept()
        metrics.open_sockets.labels("live_feed").inc()
        self.session_check = asyncio.ensure_future(self._check_session_periodically())
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", [None])[0]
        await self._send_state(int(after) if after and after.isdigit() else None)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "session_check"):
            metrics.open_sockets.labels("live_feed").dec()
            self.session_check.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _check_session_periodically(self) -> None:
        """Every LIVE_SESSION_CHECK_SECONDS, the first time after a random part of it: viewers that
        connected together (every page reconnects after a restart) would otherwise check together,
        a burst of database work on the one database thread every interval."""
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        interval = settings.LIVE_SESSION_CHECK_SECONDS
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 - jitter, not a secret
        while True:
            may_see = await database_sync_to_async(permissions.session_scope)(session_key)
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
        if event["type"] in ("call", "stream"):
            # What the page shows besides the transcript is read afresh, so it renders the same
            # description of the call as a reload would (participants, gaps and audio included).
            view = await shared_call_view(self.call_id, sequence)
            if view is not None:
                event = {**event, "view": view}
        await self.send_json(event)

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
        if self.call_id:
            state = await database_sync_to_async(live.call_state)(self.call_id, after)
            self.last_sequence = max(self.last_sequence, state["sequence"])
        else:
            state = await database_sync_to_async(live.calls_state)(self.may_see)
            self.listed = {call["id"] for call in state["calls"]}
        await self.send_json(state)


_views: dict[tuple[str, int], asyncio.Future[dict[str, Any] | None]] = {}
VIEW_KEPT_SECONDS = 5.0


async def shared_call_view(call_id: str, sequence: int) -> dict[str, Any] | None:
    """The call page's description after the call's event `sequence`, read once per process however
    many of its viewers watch the call: a call nobody watches costs nothing, a call many watch one read.
    Kept a few seconds, long enough for every viewer of the process to be handed the event."""
    key = (call_id, sequence)
    read = _views.get(key)
    if read is None:
        read = asyncio.ensure_future(database_sync_to_async(live.call_view)(call_id))
        _views[key] = read
        loop = asyncio.get_running_loop()
        read.add_done_callback(lambda _: loop.call_later(VIEW_KEPT_SECONDS, _views.pop, key, None))
    return await asyncio.shield(read)
