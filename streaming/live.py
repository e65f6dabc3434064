"""Read side of the live feed: whether a viewer may follow a call (and the access log entry that says
they did), and the snapshot a viewer gets when it (re)connects. Which calls a viewer may see is
calls/permissions.py's `Scope`."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from calls import audit, call_reads, display, live_events
from calls.models import Call
from calls.permissions import Scope, scope_of, session_user

LIST_FEED_CALLS = 200


def call_in_scope(call_id: str, scope: Scope) -> bool:
    """Whether the call exists and is in the scope; a call out of scope is refused as one that does not exist."""
    try:
        return scope.calls().filter(pk=call_id).exists()
    except (ValueError, TypeError):
        return False


def admit(session_key: str | None, call_id: str | None, ip: str | None) -> Scope | None:
    """The scope of the session's user if they may follow the call (or the call list, when `call_id` is
    None), logged; None for anyone else. One trip to the database for all a connect asks: in a burst of
    calls each trip waits its turn on the sockets' database threads, and daphne gives a handshake 5 seconds."""
    user = session_user(session_key)
    if user is None:
        return None
    scope = scope_of(user)
    return scope if subscribe(user, scope, call_id, ip) else None


def subscribe(user: AbstractBaseUser, scope: Scope, call_id: str | None, ip: str | None) -> bool:
    """Whether `user` may follow the call (or the call list, when `call_id` is None): logged when they may."""
    if call_id is None:
        audit.record_access(user, None, audit.LIVE, "call list", ip=ip)
        return True
    call = scope.calls().filter(pk=call_id).first() if call_id else None
    if call is None:
        return False
    audit.record_access(user, call, audit.LIVE, ip=ip)
    return True


def call_state_now(call_id: uuid.UUID) -> str | None:
    """The call's state (Call.State), or None when there is no such call."""
    return Call.objects.filter(pk=call_id).values_list("state", flat=True).first()


def call_state(call_id: str, after: int | None) -> dict[str, Any]:
    """The call as it stands, with its final segments numbered above `after` (all of them when None)."""
    call = call_reads.call_with_parts(call_id)
    if call is None:
        raise Call.DoesNotExist(call_id)
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
    call = call_reads.call_with_parts(call_id)
    return display.call_view(call) if call is not None else None


def calls_state(scope: Scope) -> dict[str, Any]:
    """The live calls in scope, newest first: the call list's snapshot."""
    calls = scope.calls(Call.objects.live()).order_by("-created_at")[:LIST_FEED_CALLS]
    return {"type": "calls", "calls": [live_events.call_payload(call) for call in calls]}
