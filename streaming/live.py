"""Read side of the live feed: the snapshot a viewer gets when it (re)connects. Who may watch is
calls/permissions.py's to say."""

from __future__ import annotations

import uuid
from typing import Any

from calls import display, live_events
from calls.models import Call

LIST_FEED_CALLS = 200


def call_exists(call_id: str) -> bool:
    try:
        return Call.objects.filter(pk=call_id).exists()
    except (ValueError, TypeError):
        return False


def call_state_now(call_id: uuid.UUID) -> str | None:
    """The call's state (Call.State), or None when there is no such call."""
    return Call.objects.filter(pk=call_id).values_list("state", flat=True).first()


def call_state(call_id: str, after: int | None) -> dict[str, Any]:
    """The call as it stands, with its final segments numbered above `after` (all of them when None)."""
    call = Call.objects.prefetch_related("participants", "streams", "gaps").get(pk=call_id)
    return {
        "type": "snapshot" if after is None else "resume",
        "call_id": str(call.id),
        "sequence": call.last_sequence,
        "call": live_events.call_payload(call),
        "view": display.call_view(call),
        "participants": [
            {"raw_id": participant.raw_id, "label": participant.label, "kind": participant.kind}
            for participant in call.participants.all()
        ],
        "streams": [live_events.stream_payload(stream) for stream in call.streams.all()],
        "segments": [live_events.segment_payload(segment) for segment in call.snapshot_segments(after)],
    }


def call_view(call_id: str) -> dict[str, Any] | None:
    """The call page's description of the call as it stands (calls.display.call_view), which the feed
    adds to each call and stream event it sends a call page; None once the call has been deleted."""
    call = Call.objects.prefetch_related("participants", "streams", "gaps").filter(pk=call_id).first()
    return display.call_view(call) if call is not None else None


def calls_state() -> dict[str, Any]:
    calls = Call.objects.live().order_by("-created_at")[:LIST_FEED_CALLS]
    return {"type": "calls", "calls": [live_events.call_payload(call) for call in calls]}
