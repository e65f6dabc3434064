"""Websocket consumers: ACS's media socket in, staff live feeds out. Each translates I/O and delegates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from calls.authentication import AcsAuthenticationError, jwt_verification_enabled, verify_acs_authorization
from calls.models import ENDED_STATES
from calls.tokens import unsign_media_token
from compat import channels
from streaming import events, ingest, live, metrics
from streaming.ingest import MediaSession
from streaming.packets import PacketError, parse_packet

logger = logging.getLogger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


# daphne (autobahn) lets an application close a socket only with 1000 or 3000-4999, so RFC 6455's
# 1001 (going away) and 1008 (policy violation) are sent as 4001 and 4008.
CLOSE_GOING_AWAY = 4001
CLOSE_POLICY_VIOLATION = 4008


class MediaStreamConsumer(AsyncWebsocketConsumer):
    """ACS's media-streaming and transcription sockets (one URL per call, signed; see calls/tokens.py).

    ACS is a server, not a browser: no Origin header, no cookies. It is authenticated by the signed
    token in the path and, when configured, ACS's Bearer JWT, and refused before accept() otherwise.
    The token is checked first, so a flood of unauthenticated attempts costs no database query.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer loop, trimmed for 50 frames a second per participant (compat/channels.py).

        Frames go straight from daphne's queue to `receive`, without Channels' hop to the database
        thread to close stale connections: every ORM call a media socket makes goes through
        database_sync_to_async, which closes them itself.
        """
        self.backlog = channels.daphne_backlog(receive)
        try:
            await channels.serve_without_channel_layer(self, scope, receive, send)
        except asyncio.CancelledError:  # on SIGTERM, and when a closed socket's handler overstays
            await self._finish_when_cancelled()
            raise

    async def connect(self) -> None:
        if ingest.shutting_down():
            await self.close()  # ACS reconnects, through the load balancer, to another process
            return
        call_id = await self._authenticate()
        if call_id is None:
            await self.close()  # before accept(): the handshake fails with HTTP 403
            return
        self.session = MediaSession(
            call_id,
            call_connection_id=_header(self.scope, b"x-ms-call-connection-id"),
            correlation_id=_header(self.scope, b"x-ms-call-correlation-id"),
            backlog=self.backlog,
        )
        await self.accept()
        metrics.open_sockets.labels("media").inc()
        self.session.on_shutdown = self._say_going_away
        self.session.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = text_data if text_data is not None else bytes_data
        if frame is None:
            return
        admission = self.session.admit(frame)
        if admission is not ingest.ACCEPT:
            if admission is ingest.CLOSE:
                await self.close(code=CLOSE_POLICY_VIOLATION)
            return
        try:
            packet = parse_packet(frame)
        except PacketError as error:
            self.session.note_malformed(error)
            return
        await self.session.handle(packet)

    async def disconnect(self, code: int) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            self.session = None
            metrics.open_sockets.labels("media").dec()
            await session.close()

    async def _finish_when_cancelled(self) -> None:
        """Store and flush everything; when the server is stopping, say goodbye too."""
        session = getattr(self, "session", None)
        if session is not None:
            await (session.shut_down() if ingest.shutting_down() else session.close())

    async def _say_going_away(self) -> None:
        """Close with CLOSE_GOING_AWAY, so ACS reconnects, through the load balancer, to another process."""
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.close(code=CLOSE_GOING_AWAY)

    async def _authenticate(self) -> uuid.UUID | None:
        client = self.scope.get("client") or ("?", 0)
        call_id = unsign_media_token(self.scope["url_route"]["kwargs"]["token"])
        if call_id is None:
            _refused("bad_token", "Media socket from %s refused: bad or expired URL token", client[0])
            return None
        if jwt_verification_enabled():
            try:
                await database_sync_to_async(verify_acs_authorization)(_header(self.scope, b"authorization"))
            except AcsAuthenticationError as error:
                _refused("bad_jwt", "Media socket for call %s from %s refused: %s", call_id, client[0], error)
                return None
        state = await database_sync_to_async(live.call_state_now)(call_id)
        if state is None:
            _refused("no_call", "Media socket refused: call %s does not exist", call_id)
            return None
        if state in ENDED_STATES:
            # The URL stays valid for days and may have been logged; once the call is over it opens
            # nothing. A socket already open when the call ends still delivers its last finals.
            _refused("call_ended", "Media socket for call %s from %s refused: the call has ended", call_id, client[0])
            return None
        return call_id


_refusals = 0


def _refused(reason: str, message: str, *args: object) -> None:
    """Count a refused media socket; log the first few, then one in a thousand (refusals can come in floods)."""
    global _refusals
    _refusals += 1
    metrics.refused_sockets.labels(reason).inc()
    if _refusals <= 20 or _refusals % 1000 == 0:
        logger.warning(message + " (refusal #%d)", *args, _refusals)


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    """Staff browsers: `ws/calls/` (every call) and `ws/calls/<id>/` (one call, with intermediate text).

    On connect a viewer gets a snapshot, then ordered deltas. `?after=<sequence>` (or a
    `{"type": "resume", "after": N}` message) resumes after the last delta a page saw. When a
    delta's number skips ahead (the channel layer dropped one), the gap is refilled from the database.

    The socket outlives the page load, so its session is re-checked every LIVE_SESSION_CHECK_SECONDS:
    after a logout, an expiry or a lost permission it closes with SESSION_ENDED (the page stops
    reconnecting).
    """

    SESSION_ENDED = 4401

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels hops to the database thread (aclose_old_connections) before every handler; a live
        # event needs no database unless it resyncs, which goes through database_sync_to_async anyway.
        if message["type"] == events.HANDLER_TYPE:
            await channels.dispatch_without_database_hop(self, message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(live.can_watch)(user):
            await self.close()
            return
        self.call_id: str | None = self.scope["url_route"]["kwargs"].get("call_id")
        self.last_sequence = 0
        group = events.call_group(self.call_id) if self.call_id else events.CALLS_GROUP
        if self.call_id and not await database_sync_to_async(live.call_exists)(self.call_id):
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
            if not await database_sync_to_async(live.session_can_watch)(session_key):
                with contextlib.suppress(Exception):  # the client may be gone already
                    await self.close(code=self.SESSION_ENDED)
                return
            await asyncio.sleep(interval)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resume" and isinstance(content.get("after"), int):
            await self._send_state(content["after"])

    async def live_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        metrics.live_latency_seconds.observe(time.time() - message.get("published_at", time.time()))
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
            view = await database_sync_to_async(live.call_view)(self.call_id)
            if view is not None:
                event = {**event, "view": view}
        await self.send_json(event)

    async def _send_state(self, after: int | None) -> None:
        if self.call_id:
            state = await database_sync_to_async(live.call_state)(self.call_id, after)
            self.last_sequence = max(self.last_sequence, state["sequence"])
        else:
            state = await database_sync_to_async(live.calls_state)()
        await self.send_json(state)
