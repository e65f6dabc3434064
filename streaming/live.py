"""Read side of the live feed: who may watch, and the snapshot a viewer gets when it (re)connects."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from calls.models import Call, TranscriptSegment
from streaming import events

WATCH_PERMISSION = "calls.watch_call"
LIST_FEED_CALLS = 200


def can_watch(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(WATCH_PERMISSION))


def call_exists(call_id: str) -> bool:
    try:
        return Call.objects.filter(pk=call_id).exists()
    except (ValueError, TypeError):
        return False


def call_state(call_id: str, after: int | None) -> dict[str, Any]:
    """The call as it stands, with its final segments numbered above `after` (all of them when None).

    The call row is read first: a sequence number becomes visible only when the transaction that took
    it commits, so every segment numbered up to `last_sequence` is already readable.
    """
    call = Call.objects.get(pk=call_id)
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
        "participants": [
            {"raw_id": participant.raw_id, "label": participant.label, "kind": participant.kind}
            for participant in call.participants.all()
        ],
        "streams": [events.stream_payload(stream) for stream in call.streams.all()],
        "segments": [events.segment_payload(segment) for segment in segments],
    }


def calls_state() -> dict[str, Any]:
    calls = Call.objects.live().order_by("-created_at")[:LIST_FEED_CALLS]
    return {"type": "calls", "calls": [events.call_payload(call) for call in calls]}
