"""Websocket consumers: ACS's media socket in, staff live feeds out. Each translates I/O and delegates."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from calls.authentication import AcsAuthenticationError, jwt_verification_enabled, verify_acs_authorization
from calls.models import Call
from calls.tokens import unsign_media_token
from streaming import events, live
from streaming.ingest import MediaSession
from streaming.packets import PacketError, parse_packet

logger = logging.getLogger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


class MediaStreamConsumer(AsyncWebsocketConsumer):
    """ACS's media-streaming and transcription sockets (one URL per call, signed; see calls/tokens.py).

    ACS is a server, not a browser: no Origin header, no cookies. It is authenticated by the signed
    token in the path and, when configured, ACS's Bearer JWT, and refused before accept() otherwise.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels awaits aclose_old_connections() (a thread hop) before every handler. Audio frames
        # arrive 50 times a second per participant, and every ORM call here goes through
        # database_sync_to_async, which closes stale connections itself, so skip the hop.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        call_id = await self._authenticate()
        if call_id is None:
            await self.close()  # before accept(): the handshake fails with HTTP 403
            return
        self.session = MediaSession(
            call_id,
            call_connection_id=_header(self.scope, b"x-ms-call-connection-id"),
            correlation_id=_header(self.scope, b"x-ms-call-correlation-id"),
        )
        await self.accept()
        self.session.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = text_data if text_data is not None else bytes_data
        if frame is None:
            return
        if len(frame) > settings.MAX_MEDIA_MESSAGE_BYTES:
            self.session.note_oversized(len(frame))
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
            await session.close()

    async def _authenticate(self) -> uuid.UUID | None:
        client = self.scope.get("client") or ("?", 0)
        call_id = unsign_media_token(self.scope["url_route"]["kwargs"]["token"])
        if call_id is None:
            logger.warning("Media socket from %s refused: bad or expired URL token", client[0])
            return None
        if jwt_verification_enabled():
            try:
                await database_sync_to_async(verify_acs_authorization)(_header(self.scope, b"authorization"))
            except AcsAuthenticationError as error:
                logger.warning("Media socket for call %s from %s refused: %s", call_id, client[0], error)
                return None
        if not await Call.objects.filter(pk=call_id).aexists():
            logger.warning("Media socket refused: call %s does not exist", call_id)
            return None
        return call_id


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    """Staff browsers: `ws/calls/` (every call) and `ws/calls/<id>/` (one call, with intermediate text).

    On connect a viewer gets a snapshot, then ordered deltas. `?after=<sequence>` (or a
    `{"type": "resume", "after": N}` message) resumes after the last delta a page saw. When a
    delta's number skips ahead (the channel layer dropped one), the gap is refilled from the database.
    """

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
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", [None])[0]
        await self._send_state(int(after) if after and after.isdigit() else None)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resume" and isinstance(content.get("after"), int):
            await self._send_state(content["after"])

    async def live_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
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

    async def _send_state(self, after: int | None) -> None:
        if self.call_id:
            state = await database_sync_to_async(live.call_state)(self.call_id, after)
            self.last_sequence = max(self.last_sequence, state["sequence"])
        else:
            state = await database_sync_to_async(live.calls_state)()
        await self.send_json(state)
