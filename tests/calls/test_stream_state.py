"""The stream state machine as a table (each status and event → new status, wanted, gap action), and the
rule it unified: a socket that reconnects while staff asked to stop does not make the stream active."""

from __future__ import annotations

import pytest
from django.db import transaction

from calls import control, services, stream_state
from calls.models import Call, Gap
from calls.stream_state import CallFacts, Event, GapAction, StreamState, Transition, next_state
from tests.calls.conftest import new_call

S = Call.StreamStatus
INACTIVE, STARTING, ACTIVE, STOPPING, FAILED, PAUSED = S.INACTIVE, S.STARTING, S.ACTIVE, S.STOPPING, S.FAILED, S.PAUSED
LIVE = CallFacts()
ENDED = CallFacts(live=False, connected=False, connecting_or_connected=False)
RINGING = CallFacts(connected=False, connecting_or_connected=True)
TRANSFERRING = CallFacts(connected=False, connecting_or_connected=False)

# (status, wanted, event, call) → (status, wanted, gap action, recover?)
TABLE = [
    # the socket connects: active unless staff asked to stop (or the call is over)
    (INACTIVE, True, Event.SOCKET_OPENED, LIVE, ACTIVE, True, GapAction.CLOSE_SOCKET_DROP, False),
    (STARTING, True, Event.SOCKET_OPENED, LIVE, ACTIVE, True, GapAction.CLOSE_SOCKET_DROP, False),
    (ACTIVE, True, Event.SOCKET_OPENED, LIVE, ACTIVE, True, GapAction.CLOSE_SOCKET_DROP, False),
    (FAILED, True, Event.SOCKET_OPENED, LIVE, ACTIVE, True, GapAction.CLOSE_SOCKET_DROP, False),
    (STOPPING, False, Event.SOCKET_OPENED, LIVE, STOPPING, False, GapAction.NONE, False),
    (STOPPING, True, Event.SOCKET_OPENED, LIVE, STOPPING, True, GapAction.NONE, False),
    (INACTIVE, False, Event.SOCKET_OPENED, LIVE, INACTIVE, False, GapAction.NONE, False),
    (INACTIVE, True, Event.SOCKET_OPENED, ENDED, INACTIVE, True, GapAction.NONE, False),
    # the socket closes: a drop only while active on a live call
    (ACTIVE, True, Event.SOCKET_CLOSED, LIVE, ACTIVE, True, GapAction.OPEN_SOCKET_DROP, False),
    (STOPPING, False, Event.SOCKET_CLOSED, LIVE, STOPPING, False, GapAction.NONE, False),
    (INACTIVE, False, Event.SOCKET_CLOSED, LIVE, INACTIVE, False, GapAction.NONE, False),
    (FAILED, True, Event.SOCKET_CLOSED, LIVE, FAILED, True, GapAction.NONE, False),
    (ACTIVE, True, Event.SOCKET_CLOSED, ENDED, ACTIVE, True, GapAction.NONE, False),
    # ACS's Started/Resumed: the same rule as the socket, closing every gap of the kind
    (STARTING, True, Event.ACS_STARTED, LIVE, ACTIVE, True, GapAction.CLOSE, False),
    (FAILED, True, Event.ACS_STARTED, LIVE, ACTIVE, True, GapAction.CLOSE, False),
    (STOPPING, False, Event.ACS_STARTED, LIVE, STOPPING, False, GapAction.NONE, False),
    (INACTIVE, False, Event.ACS_STARTED, LIVE, INACTIVE, False, GapAction.NONE, False),
    # ACS's Stopped/Failed: lost (gap + recovery) when wanted on a connecting or connected call
    (ACTIVE, True, Event.ACS_STOPPED, LIVE, INACTIVE, True, GapAction.OPEN_ACS_FAILURE, True),
    (STOPPING, False, Event.ACS_STOPPED, LIVE, INACTIVE, False, GapAction.NONE, False),
    (ACTIVE, True, Event.ACS_STOPPED, TRANSFERRING, INACTIVE, True, GapAction.NONE, False),
    (ACTIVE, True, Event.ACS_FAILED, LIVE, FAILED, True, GapAction.OPEN_ACS_FAILURE, True),
    (STARTING, True, Event.ACS_FAILED, RINGING, FAILED, True, GapAction.OPEN_ACS_FAILURE, True),
    (STOPPING, False, Event.ACS_FAILED, LIVE, FAILED, False, GapAction.NONE, False),
    (ACTIVE, True, Event.ACS_FAILED, ENDED, ACTIVE, True, GapAction.NONE, False),
    # staff start and stop
    (INACTIVE, False, Event.STAFF_START, LIVE, STARTING, True, GapAction.NONE, False),
    (FAILED, True, Event.STAFF_START, LIVE, STARTING, True, GapAction.NONE, False),
    (ACTIVE, True, Event.STAFF_STOP, LIVE, STOPPING, False, GapAction.NONE, False),
    (STARTING, True, Event.STAFF_STOP, LIVE, STOPPING, False, GapAction.NONE, False),
    (FAILED, True, Event.STAFF_STOP, LIVE, INACTIVE, False, GapAction.NONE, False),
    (STOPPING, False, Event.STOP_ACCEPTED, LIVE, STOPPING, False, GapAction.OPEN_STOPPED_BY_STAFF, False),
    # recovery
    (ACTIVE, True, Event.RECOVERY_LOST, LIVE, FAILED, True, GapAction.NONE, True),
    (ACTIVE, False, Event.RECOVERY_LOST, LIVE, ACTIVE, False, GapAction.NONE, False),
    (FAILED, True, Event.RECOVERY_LOST, LIVE, FAILED, True, GapAction.NONE, False),
    (ACTIVE, True, Event.RECOVERY_LOST, RINGING, ACTIVE, True, GapAction.NONE, False),
    (FAILED, True, Event.RECOVERY_RESTARTING, LIVE, STARTING, True, GapAction.NONE, False),
    (ACTIVE, True, Event.RECOVERY_RESTARTING, LIVE, ACTIVE, True, GapAction.NONE, False),
    (STARTING, True, Event.RECOVERY_GAVE_UP, LIVE, FAILED, True, GapAction.NONE, False),
    # a pause for sensitive data: paused at once, whatever ran; what staff want is kept for afterwards
    (ACTIVE, True, Event.STAFF_PAUSE, LIVE, PAUSED, True, GapAction.OPEN_PAUSE, False),
    (STARTING, True, Event.STAFF_PAUSE, LIVE, PAUSED, True, GapAction.OPEN_PAUSE, False),
    (FAILED, True, Event.STAFF_PAUSE, LIVE, PAUSED, True, GapAction.OPEN_PAUSE, False),
    (INACTIVE, False, Event.STAFF_PAUSE, LIVE, PAUSED, False, GapAction.OPEN_PAUSE, False),
    # ... and nothing ACS, a socket or recovery report changes a paused stream
    (PAUSED, True, Event.ACS_STOPPED, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.ACS_FAILED, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.ACS_STARTED, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.SOCKET_OPENED, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.SOCKET_CLOSED, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.RECOVERY_LOST, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.RECOVERY_RESTARTING, LIVE, PAUSED, True, GapAction.NONE, False),
    (PAUSED, True, Event.RECOVERY_GAVE_UP, LIVE, PAUSED, True, GapAction.NONE, False),
    # resuming starts it again if staff want it
    (PAUSED, True, Event.RESUME, LIVE, STARTING, True, GapAction.CLOSE_PAUSE, False),
    (PAUSED, False, Event.RESUME, LIVE, INACTIVE, False, GapAction.CLOSE_PAUSE, False),
    # the end of the call
    (ACTIVE, True, Event.CALL_ENDED, ENDED, INACTIVE, True, GapAction.END_OF_CALL, False),
    (PAUSED, True, Event.CALL_ENDED, ENDED, INACTIVE, True, GapAction.END_OF_CALL, False),
    (STOPPING, False, Event.CALL_ENDED, ENDED, INACTIVE, False, GapAction.END_OF_CALL, False),
    (FAILED, True, Event.CALL_ENDED, ENDED, INACTIVE, True, GapAction.END_OF_CALL, False),
]


@pytest.mark.parametrize(("status", "wanted", "event", "call", "new_status", "new_wanted", "gap", "recover"), TABLE)
def test_the_state_machine(
    status: str,
    wanted: bool,
    event: Event,
    call: CallFacts,
    new_status: str,
    new_wanted: bool,
    gap: GapAction,
    recover: bool,
) -> None:
    assert next_state(StreamState(status, wanted), event, call) == Transition(
        StreamState(new_status, new_wanted), gap, recover
    )


REFUSALS = [
    (ACTIVE, Event.STAFF_START, "already active"),
    (STARTING, Event.STAFF_START, "already starting"),
    (STOPPING, Event.STAFF_START, "still stopping; try again in a moment"),
    (INACTIVE, Event.STAFF_STOP, "not active"),
    (STOPPING, Event.STAFF_STOP, "already stopping"),
    (PAUSED, Event.STAFF_START, "paused for sensitive data; resume it instead"),
    (PAUSED, Event.STAFF_STOP, "paused for sensitive data; resume it instead"),
    (PAUSED, Event.STAFF_PAUSE, "already paused"),
    (STOPPING, Event.STAFF_PAUSE, "still stopping; try again in a moment"),
    (ACTIVE, Event.RESUME, "not paused"),
]


@pytest.mark.parametrize(("status", "event", "refused"), REFUSALS)
def test_staff_requests_the_status_does_not_allow_are_refused_and_change_nothing(
    status: str, event: Event, refused: str
) -> None:
    state = StreamState(status, True)
    assert next_state(state, event, LIVE) == Transition(state, refused=refused)


def test_every_status_and_event_has_a_rule() -> None:
    for status in S:
        for wanted in (True, False):
            for event in Event:
                next_state(StreamState(status, wanted), event, LIVE)  # raises for an event without a rule


def test_after_acs_refuses_the_stream_goes_back_unless_a_callback_moved_it() -> None:
    before = StreamState(ACTIVE, True)
    assert stream_state.after_refusal(StreamState(STOPPING, False), STOPPING, before) == before
    moved = StreamState(INACTIVE, False)
    assert stream_state.after_refusal(moved, STOPPING, before) == moved


@pytest.mark.django_db
def test_a_socket_that_reconnects_while_staff_stop_streaming_leaves_it_stopping_and_its_gap_open() -> None:
    call = new_call(state=Call.State.CONNECTED)
    stream = services.open_stream(call_id=call.id, kind="audio", subscription_id="sub-1")
    Call.objects.filter(pk=call.id).update(
        media_streaming_status=Call.StreamStatus.STOPPING, media_streaming_wanted=False
    )
    with transaction.atomic():
        stream_state.apply(control.locked_call(call.id), control.MEDIA, Event.STOP_ACCEPTED, detail="stopped by staff.")
    services.close_stream(stream_id=stream.id, counters={})

    services.open_stream(call_id=call.id, kind="audio", subscription_id="sub-1")

    call.refresh_from_db()
    assert call.media_streaming_status == Call.StreamStatus.STOPPING
    assert Gap.objects.get(call=call).ended_at is None
