from __future__ import annotations

import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import CookieMiddleware
from django.urls import path, re_path

from streaming.consumers import MediaStreamConsumer
from streaming.live_feed import LiveFeedConsumer


def browser_socket(application):
    """Staff browsers: an Origin check against ALLOWED_HOSTS, and their cookies, whose session the
    consumer checks itself (streaming/live.py `admit`) in the one database trip of its connect.
    Channels' session and auth middleware would take two more, on Channels' single database thread,
    which every socket's connect shares: in a burst of calls that queue outlasted daphne's 5-second
    handshake limit."""
    return AllowedHostsOriginValidator(CookieMiddleware(application))


logger = logging.getLogger(__name__)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Any other websocket path: refused before accept (daphne answers 403) with one log line.
    Without it Channels' router raised, and every probe cost a 500 and a traceback in the log."""

    async def connect(self) -> None:
        client = self.scope.get("client") or ("?", 0)
        logger.warning("Websocket for unknown path %r from %s refused", self.scope["path"][:200], client[0])
        await self.close()


live_feed = browser_socket(LiveFeedConsumer.as_asgi())

websocket_urlpatterns = [
    # ACS's server-to-server media socket: authenticated by its signed URL and JWT; it sends no
    # Origin header and no cookies, so browser checks must not guard it.
    path("ws/media/<str:token>/", MediaStreamConsumer.as_asgi()),
    path("ws/calls/", live_feed),
    path("ws/calls/<uuid:call_id>/", live_feed),
    re_path(r"", UnknownPathConsumer.as_asgi()),  # last: everything no route above matched
]
