"""Signed per-call tokens for the URLs handed to ACS: the media socket and the callback URL.

Our own Call id is signed, not ACS's callConnectionId: that id is not known until answer/create
returns, after the URLs were sent. Django's signing framework checks SECRET_KEY_FALLBACKS too, so
URLs already handed out stay valid across a key rotation.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing

MEDIA_SALT = "callscribe.media-socket"
CALLBACK_SALT = "callscribe.callback"


def sign_call_id(call_id: uuid.UUID, *, salt: str) -> str:
    return signing.TimestampSigner(salt=salt).sign(call_id.hex)


def unsign_call_id(token: str, *, salt: str, max_age: int) -> uuid.UUID | None:
    """Return the signed Call id, or None when the token is forged, tampered with or expired."""
    try:
        value = signing.TimestampSigner(salt=salt).unsign(token, max_age=max_age)
        return uuid.UUID(hex=value)
    except (signing.BadSignature, ValueError):
        return None


def media_socket_url(call_id: uuid.UUID) -> str:
    """The websocket URL ACS streams a call's audio and transcription to. The token is in the path,
    since whether ACS keeps a query string on transportUrl is unconfirmed (reference 1.1)."""
    base = settings.PUBLIC_BASE_URL.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/ws/media/{sign_call_id(call_id, salt=MEDIA_SALT)}/"


def unsign_media_token(token: str) -> uuid.UUID | None:
    return unsign_call_id(token, salt=MEDIA_SALT, max_age=settings.MEDIA_TOKEN_MAX_AGE)


def callback_url(call_id: uuid.UUID) -> str:
    """The callbackUri for a call. ACS keeps its query string (reference 6.13), so an event that
    arrives before answer/create has returned still finds its call."""
    query = urlencode({"token": sign_call_id(call_id, salt=CALLBACK_SALT)})
    return f"{settings.PUBLIC_BASE_URL}/api/callbacks?{query}"


def unsign_callback_token(token: str) -> uuid.UUID | None:
    return unsign_call_id(token, salt=CALLBACK_SALT, max_age=settings.MEDIA_TOKEN_MAX_AGE)
