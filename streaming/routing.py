from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from streaming.consumers import LiveFeedConsumer, MediaStreamConsumer


def browser_socket(application):
    """Staff browsers: session auth, and an Origin check against ALLOWED_HOSTS."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(application))


live_feed = browser_socket(LiveFeedConsumer.as_asgi())

websocket_urlpatterns = [
    # ACS's server-to-server media socket: authenticated by its signed URL and JWT; it sends no
    # Origin header and no cookies, so browser checks must not guard it.
    path("ws/media/<str:token>/", MediaStreamConsumer.as_asgi()),
    path("ws/calls/", live_feed),
    path("ws/calls/<uuid:call_id>/", live_feed),
]
