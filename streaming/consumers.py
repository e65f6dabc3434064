"""ACS's media socket: authenticates it and hands every frame to its `MediaSession` (streaming/session.py).

The staff browsers' live feed has its own module, streaming/live_feed.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from calls.authentication import AcsAuthenticationError, jwt_verification_enabled, verify_acs_authorization
from calls.models import ENDED_STATES
from calls.tokens import unsign_media_token
from compat import channels
from streaming import live, metrics, runtime
from streaming.database import HandshakeTooLate, handshake_sync_to_async
from streaming.session import CLOSE_GOING_AWAY, MediaSession

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
    The token is checked first, so a flood of unauthenticated attempts costs no database query.
    Every frame goes to the socket's `MediaSession` (streaming/session.py) in one call, which says
    when to close.
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

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Connect and disconnect without Channels' hop to its single database thread first: in a burst
        # every socket's connect queued there (the same reason as above).
        await channels.dispatch_without_database_hop(self, message)

    async def connect(self) -> None:
        if runtime.shutting_down():
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
        self.session.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = text_data if text_data is not None else bytes_data
        if frame is None:
            return
        close_code = await self.session.receive(frame)
        if close_code is not None:
            await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            self.session = None
            metrics.open_sockets.labels("media").dec()
            await session.close()

    async def _finish_when_cancelled(self) -> None:
        """Store and flush everything. When the server is stopping (the runtime closed the session
        already, and now cancels every task), close with CLOSE_GOING_AWAY so ACS reconnects,
        through the load balancer, to another process."""
        session = getattr(self, "session", None)
        if session is None:
            return
        await session.close()
        if runtime.shutting_down():
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
                # No database: off Channels' one database thread, which every socket's queries queue on.
                await sync_to_async(verify_acs_authorization, thread_sensitive=False)(
                    _header(self.scope, b"authorization")
                )
            except AcsAuthenticationError as error:
                _refused("bad_jwt", "Media socket for call %s from %s refused: %s", call_id, client[0], error)
                return None
        try:
            state = await handshake_sync_to_async(live.call_state_now)(call_id)
        except HandshakeTooLate:
            _refused("too_late", "Media socket for call %s refused: its check waited past daphne's limit", call_id)
            return None
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
