"""Read side of the live feed: who may watch, and the snapshot a viewer gets when it (re)connects."""

from __future__ import annotations

import uuid
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.crypto import constant_time_compare

from calls import display
from calls.models import Call, TranscriptSegment
from streaming import events

WATCH_PERMISSION = "calls.watch_call"
LIST_FEED_CALLS = 200


def can_watch(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(WATCH_PERMISSION))


def session_can_watch(session_key: str | None) -> bool:
    """Whether the session a live socket was opened with is still logged in as a user who may watch.

    Re-read from the session store and the user table: logging out, the session expiring, a password
    change or losing the permission all end it.
    """
    if not session_key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    user = get_user_model().objects.filter(pk=session.get(SESSION_KEY)).first() if session.get(SESSION_KEY) else None
    if user is None:
        return False
    session_hash = session.get(HASH_SESSION_KEY) or ""
    return constant_time_compare(session_hash, user.get_session_auth_hash()) and can_watch(user)


def call_exists(call_id: str) -> bool:
    try:
        return Call.objects.filter(pk=call_id).exists()
    except (ValueError, TypeError):
        return False


def call_state_now(call_id: uuid.UUID) -> str | None:
    """The call's state (Call.State), or None when there is no such call."""
    return Call.objects.filter(pk=call_id).values_list("state", flat=True).first()


def call_state(call_id: str, after: int | None) -> dict[str, Any]:
    """The call as it stands, with its final segments numbered above `after` (all of them when None).

    The call row is read first: a sequence number becomes visible only when the transaction that took
    it commits, so every segment numbered up to `last_sequence` is already readable.
    """
    call = Call.objects.prefetch_related("participants", "streams", "gaps").get(pk=call_id)
    segments = (
        TranscriptSegment.objects.filter(call=call, sequence__lte=call.last_sequence)
        .select_related("participant")
        .order_by("sequence")
    )
    if after is not None:
        segments = segments.filter(sequence__gt=after)
    return {
        "type": "snapshot" if after is None else "resume",
        "call_id": str(call.id),
        "sequence": call.last_sequence,
        "call": events.call_payload(call),
        "view": display.call_view(call),
        "participants": [
            {"raw_id": participant.raw_id, "label": participant.label, "kind": participant.kind}
            for participant in call.participants.all()
        ],
        "streams": [events.stream_payload(stream) for stream in call.streams.all()],
        "segments": [events.segment_payload(segment) for segment in segments],
    }


def call_view(call_id: str) -> dict[str, Any] | None:
    """The call page's description of the call as it stands (calls.display.call_view), which the feed
    adds to each call and stream event it sends a call page; None once the call has been deleted."""
    call = Call.objects.prefetch_related("participants", "streams", "gaps").filter(pk=call_id).first()
    return display.call_view(call) if call is not None else None


def calls_state() -> dict[str, Any]:
    calls = Call.objects.live().order_by("-created_at")[:LIST_FEED_CALLS]
    return {"type": "calls", "calls": [events.call_payload(call) for call in calls]}
