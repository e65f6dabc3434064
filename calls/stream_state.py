"""The one place that decides a call's media-streaming and transcription status and its gaps.

Each kind of stream has a status (inactive, starting, active, stopping, failed) and `wanted`: what
staff last asked for. Every interface that learns something about a stream (the media socket, ACS's
callbacks, staff's controls, the recovery worker, the end of the call) tells `next_state` what
happened and applies the `Transition` it returns with `apply`, so the rules are written once:

- Only a stream staff want, and have not asked to stop, becomes active: the socket (re)connecting and
  ACS's Started/Resumed callback follow the same rule. ACS's callbacks are not ordered (reference
  3.1) and a socket may reconnect while ACS is still stopping it, so either can come after staff
  pressed Stop; marking the stream active then would enable "Stop" for a stream that is going away
  and close the gap the stop opened.
- A socket closing while the stream is active on a live call is a drop: a gap opens on its stream
  record, and closes when that socket is back or ACS says the stream started again. A socket knows
  only its own record, so its return closes only that record's gaps; ACS's Started callback closes
  every open gap of the kind. A socket that ACS closed because the call ended is not a drop: the end
  of the call discards drops opened within CALL_END_GRACE of it and closes every other gap.
- A stream that stops or fails while staff want it on a connecting or connected call is lost: a gap
  opens and recovery restarts it (calls/recovery.py).
- Staff stopping a stream opens a gap once ACS has accepted the stop.
- Staff pausing transcription for sensitive data (calls/pause.py) makes it `paused` and opens a gap of
  its own kind at once (a gap already open, say staff had stopped transcription, stays open: it is
  still true after the pause). Nothing ACS or a socket reports changes a paused stream, and recovery
  leaves it alone. Resuming closes the pause's gap and starts the stream again if staff still want
  it: `wanted` is kept through the pause, as what staff want afterwards.

`next_state` is pure (see the table test in tests/calls/test_stream_state.py); `apply` writes the
result on a locked call and its gaps, and leaves saving the call to the caller, who saves it with the
call's next live-feed number together with whatever else it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.db.models import Q
from django.utils import timezone

from calls.models import Call, Gap, MediaStream

Status = Call.StreamStatus
# ACS closes a call's media sockets when the call ends, and its CallDisconnected callback may come a
# moment after they closed: a socket that closed this shortly before the end was closed by the end.
CALL_END_GRACE = timedelta(seconds=5)


@dataclass(frozen=True)
class StreamKind:
    """Media streaming or transcription: which Call fields, labels and ACS requests belong to it."""

    kind: str  # MediaStream.Kind
    label: str
    status_field: str
    wanted_field: str
    event_name: str  # in Callscribe's own event types, e.g. "Callscribe.StreamingStopRequested"
    change: str  # the live-feed change name


MEDIA = StreamKind(
    MediaStream.Kind.AUDIO,
    "Media streaming",
    "media_streaming_status",
    "media_streaming_wanted",
    "Streaming",
    "streaming",
)
TRANSCRIPTION = StreamKind(
    MediaStream.Kind.TRANSCRIPTION,
    "Transcription",
    "transcription_status",
    "transcription_wanted",
    "Transcription",
    "transcription",
)
STREAM_KINDS = (MEDIA, TRANSCRIPTION)


def kind_of(stream_kind: str) -> StreamKind:
    """The StreamKind of a MediaStream.Kind."""
    return MEDIA if stream_kind == MediaStream.Kind.AUDIO else TRANSCRIPTION


class Event(StrEnum):
    SOCKET_OPENED = "socket_opened"
    SOCKET_CLOSED = "socket_closed"
    ACS_STARTED = "acs_started"  # MediaStreamingStarted, TranscriptionStarted, TranscriptionResumed
    ACS_STOPPED = "acs_stopped"
    ACS_FAILED = "acs_failed"
    STAFF_START = "staff_start"
    STAFF_STOP = "staff_stop"
    STOP_ACCEPTED = "stop_accepted"  # ACS took staff's stop request
    RECOVERY_LOST = "recovery_lost"  # a dropped socket was not back in time and ACS said nothing
    RECOVERY_RESTARTING = "recovery_restarting"  # the worker asked ACS to start it again
    RECOVERY_GAVE_UP = "recovery_gave_up"
    STAFF_PAUSE = "staff_pause"  # pause for sensitive data (transcription only)
    RESUME = "resume"  # staff, or the recovery worker once the pause has lasted SENSITIVE_PAUSE_MAX_SECONDS
    CALL_ENDED = "call_ended"


class GapAction(StrEnum):
    NONE = "none"
    OPEN_SOCKET_DROP = "open_socket_drop"  # on the socket's own stream record
    OPEN_ACS_FAILURE = "open_acs_failure"
    OPEN_STOPPED_BY_STAFF = "open_stopped_by_staff"
    CLOSE = "close"  # the stream is back: the kind's open gaps end now
    CLOSE_SOCKET_DROP = "close_socket_drop"  # the socket is back: the gaps on its stream record end now
    OPEN_PAUSE = "open_pause"  # a SENSITIVE_PAUSE gap starts
    CLOSE_PAUSE = "close_pause"  # the pause's gap ends now
    END_OF_CALL = "end_of_call"  # drops within CALL_END_GRACE discarded, every other gap closed


@dataclass(frozen=True)
class StreamState:
    status: str
    wanted: bool


@dataclass(frozen=True)
class CallFacts:
    """What the rules need to know about the call besides the stream."""

    live: bool = True  # not ended (Call.is_live)
    connected: bool = True  # Call.State.CONNECTED
    connecting_or_connected: bool = True


@dataclass(frozen=True)
class Transition:
    state: StreamState
    gap: GapAction = GapAction.NONE
    recover: bool = False  # the stream was lost while wanted: recovery should restart it
    refused: str = ""  # a staff request the status does not allow, as "<label> is <refused>."


_STARTABLE = (Status.INACTIVE, Status.FAILED)
_STOPPABLE = (Status.ACTIVE, Status.STARTING)
PAUSED_REFUSAL = "paused for sensitive data; resume it instead"


def next_state(state: StreamState, event: Event, call: CallFacts = CallFacts()) -> Transition:
    """What `event` does to a stream in `state` on a call described by `call`."""
    status, wanted = state.status, state.wanted
    unchanged = Transition(state)
    match event:
        case Event.SOCKET_OPENED | Event.ACS_STARTED:
            if not call.live or not wanted or status in (Status.STOPPING, Status.PAUSED):
                return unchanged
            closes = GapAction.CLOSE_SOCKET_DROP if event == Event.SOCKET_OPENED else GapAction.CLOSE
            return Transition(StreamState(Status.ACTIVE, wanted), closes)
        case Event.SOCKET_CLOSED:
            if call.live and status == Status.ACTIVE:
                return Transition(state, GapAction.OPEN_SOCKET_DROP)
            return unchanged
        case Event.ACS_STOPPED | Event.ACS_FAILED:
            if not call.live or status == Status.PAUSED:  # the stop the pause asked for; nothing to lose
                return unchanged
            new = StreamState(Status.INACTIVE if event == Event.ACS_STOPPED else Status.FAILED, wanted)
            if wanted and call.connecting_or_connected:
                return Transition(new, GapAction.OPEN_ACS_FAILURE, recover=True)
            return Transition(new)
        case Event.STAFF_START | Event.STAFF_STOP if status == Status.PAUSED:
            return Transition(state, refused=PAUSED_REFUSAL)
        case Event.STAFF_START:
            if status in (Status.ACTIVE, Status.STARTING):
                return Transition(state, refused=f"already {status}")
            if status == Status.STOPPING:
                return Transition(state, refused="still stopping; try again in a moment")
            return Transition(StreamState(Status.STARTING, True))
        case Event.STAFF_STOP:
            if status == Status.INACTIVE:
                return Transition(state, refused="not active")
            if status == Status.STOPPING:
                return Transition(state, refused="already stopping")
            if status == Status.FAILED:  # nothing is streaming to stop: stop wanting it, so recovery stops
                return Transition(StreamState(Status.INACTIVE, False))
            return Transition(StreamState(Status.STOPPING, False))
        case Event.STOP_ACCEPTED:
            return Transition(state, GapAction.OPEN_STOPPED_BY_STAFF)
        case Event.RECOVERY_LOST:
            # Still "active" means ACS has said nothing since the drop (a callback would have changed it).
            if call.connected and wanted and status == Status.ACTIVE:
                return Transition(StreamState(Status.FAILED, wanted), recover=True)
            return unchanged
        case Event.RECOVERY_RESTARTING:
            if status in (Status.ACTIVE, Status.PAUSED):
                return unchanged
            return Transition(StreamState(Status.STARTING, wanted))
        case Event.RECOVERY_GAVE_UP:
            if status == Status.PAUSED:
                return unchanged
            return Transition(StreamState(Status.FAILED, wanted))
        case Event.STAFF_PAUSE:
            if status == Status.PAUSED:
                return Transition(state, refused="already paused")
            if status == Status.STOPPING:
                return Transition(state, refused="still stopping; try again in a moment")
            return Transition(StreamState(Status.PAUSED, wanted), GapAction.OPEN_PAUSE)
        case Event.RESUME:
            if status != Status.PAUSED:
                return Transition(state, refused="not paused")
            resumed = StreamState(Status.STARTING if wanted else Status.INACTIVE, wanted)
            return Transition(resumed, GapAction.CLOSE_PAUSE)
        case Event.CALL_ENDED:
            return Transition(StreamState(Status.INACTIVE, wanted), GapAction.END_OF_CALL)
    raise ValueError(f"unknown stream event {event!r}")


def after_refusal(now: StreamState, tried: str, before: StreamState) -> StreamState:
    """The stream after ACS refused a staff request that set status `tried`: back to what it was,
    unless a callback has changed it meanwhile."""
    return before if now.status == tried else now


# --- reading and writing a locked call --------------------------------------------------------------


def facts(call: Call) -> CallFacts:
    return CallFacts(
        live=call.is_live,
        connected=call.state == Call.State.CONNECTED,
        connecting_or_connected=call.state in (Call.State.CONNECTING, Call.State.CONNECTED),
    )


def state_of(call: Call, stream: StreamKind) -> StreamState:
    return StreamState(getattr(call, stream.status_field), getattr(call, stream.wanted_field))


def set_state(call: Call, stream: StreamKind, state: StreamState) -> list[str]:
    """Set the stream's status and wanted on the call; returns the fields that changed."""
    changed = []
    for field, value in ((stream.status_field, state.status), (stream.wanted_field, state.wanted)):
        if getattr(call, field) != value:
            setattr(call, field, value)
            changed.append(field)
    return changed


def apply(
    call: Call, stream: StreamKind, event: Event, *, record: MediaStream | None = None, detail: str = ""
) -> tuple[Transition, list[str]]:
    """Apply `event` to a locked call: its status and wanted (not saved: the changed fields are
    returned) and its gaps (written). `record` is the socket's stream record for socket events;
    `detail` says what happened, for a gap that opens."""
    transition = next_state(state_of(call, stream), event, facts(call))
    if transition.refused:
        return transition, []
    changed = set_state(call, stream, transition.state)
    _apply_gap(call, stream, transition.gap, record, detail)
    return transition, changed


def _apply_gap(call: Call, stream: StreamKind, action: GapAction, record: MediaStream | None, detail: str) -> None:
    match action:
        case GapAction.OPEN_SOCKET_DROP:
            Gap.objects.create(call=call, stream=record, reason=Gap.Reason.SOCKET_DROP, started_at=timezone.now())
        case GapAction.OPEN_ACS_FAILURE:
            open_gap(call, stream, Gap.Reason.ACS_FAILURE, detail)
        case GapAction.OPEN_STOPPED_BY_STAFF:
            open_gap(call, stream, Gap.Reason.STOPPED_BY_STAFF, detail)
        case GapAction.CLOSE:
            close_gaps(call, stream)
        case GapAction.CLOSE_SOCKET_DROP if record is not None and record.pk is not None:
            Gap.objects.filter(stream=record, ended_at__isnull=True).update(ended_at=timezone.now())
        case GapAction.OPEN_PAUSE:
            latest = call.streams.filter(kind=stream.kind).order_by("-connected_at", "-id").first()
            reason = Gap.Reason.SENSITIVE_PAUSE
            Gap.objects.create(call=call, stream=latest, reason=reason, started_at=timezone.now(), detail=detail)
        case GapAction.CLOSE_PAUSE:
            _close_pause(call, detail)
        case GapAction.END_OF_CALL:
            _end_of_call_gaps(call)


def _unended_gaps(call: Call) -> Any:
    return Gap.objects.filter(call=call, ended_at__isnull=True)


def open_gaps(call: Call, stream: StreamKind) -> Any:
    # Gaps opened before any socket connected have no stream record; their detail names the kind.
    return _unended_gaps(call).filter(
        Q(stream__kind=stream.kind) | Q(stream__isnull=True, detail__startswith=stream.label)
    )


def open_pause(call: Call) -> Any:
    """The call's pause for sensitive data, while it lasts (one gap, or none)."""
    return _unended_gaps(call).filter(reason=Gap.Reason.SENSITIVE_PAUSE)


def open_gap(call: Call, stream: StreamKind, reason: str, detail: str) -> Gap | None:
    """Start a gap for the kind of stream, unless one is already open (a drop then a failure is one gap)."""
    if open_gaps(call, stream).exists():
        return None
    latest = call.streams.filter(kind=stream.kind).order_by("-connected_at", "-id").first()
    return Gap.objects.create(
        call=call, stream=latest, reason=reason, started_at=timezone.now(), detail=f"{stream.label} {detail}"
    )


def close_gaps(call: Call, stream: StreamKind) -> None:
    # Most starts have nothing to close. Asking first cost 0.4 ms of CPU where building the kind's update
    # (a join the ORM turns into a subquery) cost 1.1 ms, twice per call as it sets up (both timed in
    # one process, 300 runs each, not in a server under load).
    if _unended_gaps(call).exists():
        open_gaps(call, stream).update(ended_at=timezone.now())


def _close_pause(call: Call, detail: str) -> None:
    """End the pause's gap, saying how it ended after who started it ("…; resumed by bob")."""
    for gap in open_pause(call):
        gap.ended_at = timezone.now()
        gap.detail = f"{gap.detail}; {detail}" if detail else gap.detail
        gap.save(update_fields=["ended_at", "detail"])


def pause_refused(call: Call, before: StreamState) -> list[str]:
    """ACS would not stop transcription for a pause: the stream as it was before, and no pause. Returns
    the fields that changed (none when the pause has ended meanwhile)."""
    if call.transcription_status != Status.PAUSED:
        return []
    open_pause(call).delete()
    return set_state(call, TRANSCRIPTION, before)


def _end_of_call_gaps(call: Call) -> None:
    ended_at = call.ended_at or timezone.now()
    open_now = Gap.objects.filter(call=call, ended_at__isnull=True)
    open_now.filter(reason=Gap.Reason.SOCKET_DROP, started_at__gte=ended_at - CALL_END_GRACE).delete()
    open_now.update(ended_at=timezone.now())
