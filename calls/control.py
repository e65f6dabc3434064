"""Call control: what staff views, admin actions, the webhooks and the recovery worker do to a call.

Each action checks the call's state under a row lock, records the request in the call's history,
sets what staff want (`media_streaming_wanted` / `transcription_wanted`) and a transitional status,
and publishes the change. The ACS request is made afterwards, outside any transaction, so a REST
round trip never holds the call's row lock (webhooks and the media socket need it). When ACS refuses
or cannot be reached, the status is put back and a "Callscribe.AcsError" event is recorded.

ACS confirms through callbacks (MediaStreamingStarted, CallDisconnected, ...): calls/webhooks.py
moves the statuses from starting/stopping to active/inactive. Which status and gaps each of these
steps leads to is calls/stream_state.py's to decide.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from calls import acs, call_reads, live_events, participants, retention, services, stream_state
from calls.acs import AcsError
from calls.models import Call, CallEvent, RecoveryJob
from calls.stream_state import MEDIA, STREAM_KINDS, TRANSCRIPTION, StreamKind

Status = Call.StreamStatus
User = AbstractBaseUser | AnonymousUser | None

PHONE_NUMBER = re.compile(r"\+[1-9]\d{6,14}")  # E.164
LOCALE_WITH_REGION = re.compile(r"[a-zA-Z]{2,3}-[a-zA-Z0-9]{2,4}")  # ACS refuses locales without a region (6.11)


class ControlError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WrongState(ControlError):
    """The call is not in a state that allows the action (already stopped, ended, not connected yet)."""


class InvalidRequest(ControlError):
    """The action was given input it cannot use (a malformed phone number or locale)."""


# --- pieces shared with calls/webhooks.py and calls/recovery.py ------------------------------------


def locked_call(call_id: uuid.UUID) -> Call:
    """The call, locked until the surrounding transaction commits. Call inside transaction.atomic()."""
    return call_reads.locked_call(call_id)


def record_event(call: Call | None, event_type: str, message: str = "", **payload: Any) -> CallEvent:
    """A line in the call's history for something Callscribe did or noticed (types start "Callscribe.")."""
    return CallEvent.objects.create(
        call=call, type=event_type, time=timezone.now(), result_message=message, payload=payload
    )


def user_name(user: User) -> str:
    return user.get_username() if user is not None and user.is_authenticated else "Callscribe"


def finish_recovery_jobs(call: Call, outcome: str, kind: str | None = None) -> None:
    """Mark a call's waiting recovery jobs done. A job a worker is running right now is locked and
    skipped, not waited for: the worker re-reads the call when it runs the job again."""
    jobs = RecoveryJob.objects.filter(call=call, finished_at__isnull=True)
    if kind is not None:
        jobs = jobs.filter(kind=kind)
    waiting = list(jobs.select_for_update(skip_locked=True).values_list("pk", flat=True))
    if waiting:  # most calls never had one: a stream starting as asked is the common case
        RecoveryJob.objects.filter(pk__in=waiting).update(finished_at=timezone.now(), outcome=outcome)


def end_call(call: Call, *, state: str, reason: str) -> None:
    """Record that a (locked) call is over: nothing streams any more and nothing is left to recover."""
    call.state = state
    call.ended_at = call.ended_at or timezone.now()
    call.end_reason = reason
    for stream in STREAM_KINDS:
        stream_state.apply(call, stream, stream_state.Event.CALL_ENDED)
    finish_recovery_jobs(call, "The call ended.")
    fields = ["state", "ended_at", "end_reason", "media_streaming_status", "transcription_status"]
    live_events.save_with_sequence(call, fields, "state")
    retention.assign_expiry(call)


def learn_connection(call: Call, info: acs.ConnectionInfo) -> list[str]:
    """Fill in ACS's ids from answer/create or a callback; returns the changed fields."""
    return services.learn_acs_ids(
        call,
        call_connection_id=info.call_connection_id,
        server_call_id=info.server_call_id,
        correlation_id=info.correlation_id,
    )


# --- answering and placing calls -------------------------------------------------------------------


@transaction.atomic
def create_inbound_call(
    *, caller: str, callee: str, caller_display_name: str = "", server_call_id: str = "", correlation_id: str = ""
) -> Call:
    """The Call for an Event Grid IncomingCall, before it is answered (see answer_incoming_call), in one
    INSERT with the streams it will ask for."""
    call = services.create_call(
        direction=Call.Direction.INBOUND,
        caller=caller,
        callee=callee,
        caller_display_name=caller_display_name,
        locale=settings.TRANSCRIPTION_LOCALE,
        server_call_id=server_call_id,
        correlation_id=correlation_id,
        **_streams_wanted_from_settings(),
    )
    if caller:
        participants.ensure_participant(call_id=call.id, raw_id=caller, display_name=caller_display_name)
    record_event(call, "Callscribe.IncomingCall", f"Incoming call from {caller_display_name or caller}")
    return call


def record_answer(call_id: uuid.UUID, info: acs.ConnectionInfo) -> Call:
    """ACS accepted our answer (calls/answering.py makes the request)."""
    return _call_set_up(call_id, info, "Callscribe.CallAnswered", "Answered the call")


def mark_unanswered(call_id: uuid.UUID, reason: str) -> None:
    """The caller rang out: ACS refused every answer, or none got through while the call rang."""
    with transaction.atomic():
        call = locked_call(call_id)
        record_event(call, "Callscribe.CallUnanswered", reason)
        if call.is_live and call.state != Call.State.CONNECTED:
            end_call(call, state=Call.State.UNANSWERED, reason=reason)


def create_outbound_call(*, target: str, source_caller_id_number: str = "", user: User = None) -> Call:
    """The Call for a phone number (+E.164) or an ACS user (8:acs:...), before ACS places it (place_call)."""
    target_raw_id = _target_raw_id(target)
    source_caller_id_number = source_caller_id_number.strip()
    if source_caller_id_number and not PHONE_NUMBER.fullmatch(source_caller_id_number):
        raise InvalidRequest("The caller ID must be a phone number in +E.164 form, e.g. +14255550100.")
    with transaction.atomic():
        call = services.create_call(
            direction=Call.Direction.OUTBOUND,
            caller=f"4:{source_caller_id_number}" if source_caller_id_number else "",
            callee=target_raw_id,
            locale=settings.TRANSCRIPTION_LOCALE,
        )
        _want_streams_from_settings(call)
        participants.add_placing_agent(call, user)
        record_event(call, "Callscribe.CallPlaced", f"{user_name(user)} called {target_raw_id}")
    return call


def place_call(*, call_id: uuid.UUID) -> Call:
    """Ask ACS to place an outbound call with streaming and transcription; a refusal marks it failed."""
    call = Call.objects.get(pk=call_id)
    try:
        info = acs.create_call(
            call_id=call.id,
            target_raw_id=call.callee,
            source_caller_id_number=call.caller.removeprefix("4:"),
            locale=call.locale,
        )
    except AcsError as error:
        _call_not_set_up(call.id, error)
        raise
    return _call_set_up(call.id, info, "Callscribe.CallCreated", "ACS is placing the call")


def _target_raw_id(target: str) -> str:
    target = target.strip().replace(" ", "")
    if PHONE_NUMBER.fullmatch(target):
        return f"4:{target}"
    if target.startswith("4:") and PHONE_NUMBER.fullmatch(target[2:]):
        return target
    if re.fullmatch(r"8:(acs|gcch-acs|dod-acs):[\w.-]+", target):
        return target
    raise InvalidRequest("Call a phone number in +E.164 form (+14255550100) or an ACS user id (8:acs:...).")


def _streams_wanted_from_settings() -> dict[str, Any]:
    """Whether answer/create asks ACS to start streaming and transcribing at once (the settings)."""
    media, transcription = settings.START_MEDIA_STREAMING_ON_ANSWER, settings.START_TRANSCRIPTION_ON_ANSWER
    return {
        "media_streaming_wanted": media,
        "transcription_wanted": transcription,
        "media_streaming_status": Status.STARTING if media else Status.INACTIVE,
        "transcription_status": Status.STARTING if transcription else Status.INACTIVE,
    }


def _want_streams_from_settings(call: Call) -> None:
    for field, value in _streams_wanted_from_settings().items():
        setattr(call, field, value)
    live_events.save_with_sequence(call, list(_streams_wanted_from_settings()), "streaming")


def _call_set_up(call_id: uuid.UUID, info: acs.ConnectionInfo, event_type: str, message: str) -> Call:
    with transaction.atomic():
        call = locked_call(call_id)
        record_event(call, event_type, message, call_connection_id=info.call_connection_id, state=info.state)
        changed = learn_connection(call, info)
        if changed:
            live_events.save_with_sequence(call, changed, "state")
    return call


def _call_not_set_up(call_id: uuid.UUID, error: AcsError) -> None:
    with transaction.atomic():
        call = locked_call(call_id)
        record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        if call.is_live and call.state != Call.State.CONNECTED:
            end_call(call, state=Call.State.FAILED, reason=error.message)


# --- media streaming and transcription ---------------------------------------------------------------


def start_media_streaming(*, call_id: uuid.UUID, user: User = None) -> Call:
    return _start_stream(call_id, MEDIA, user)


def stop_media_streaming(*, call_id: uuid.UUID, user: User = None) -> Call:
    return _stop_stream(call_id, MEDIA, user)


def start_transcription(*, call_id: uuid.UUID, user: User = None) -> Call:
    return _start_stream(call_id, TRANSCRIPTION, user)


def stop_transcription(*, call_id: uuid.UUID, user: User = None) -> Call:
    return _stop_stream(call_id, TRANSCRIPTION, user)


def request_stream_start(call: Call, stream: StreamKind) -> None:
    """The ACS request that (re)starts a stream. Transcription restarts in the call's language."""
    if stream is MEDIA:
        acs.start_media_streaming(call.call_connection_id or "")
    else:
        acs.start_transcription(call.call_connection_id or "", locale=call.locale)


def _start_stream(call_id: uuid.UUID, stream: StreamKind, user: User) -> Call:
    with transaction.atomic():
        call = locked_call(call_id)
        require_connected(call)
        previous = stream_state.state_of(call, stream)
        _change_stream(call, stream, stream_state.Event.STAFF_START)
        finish_recovery_jobs(call, f"Started again by {user_name(user)}.", stream_job_kind(stream))
        record_event(
            call, f"Callscribe.{stream.event_name}StartRequested", f"{user_name(user)} started {_lower(stream)}"
        )
    try:
        request_stream_start(call, stream)
    except AcsError as error:
        _undo(call_id, stream, previous, Status.STARTING, error)
        raise
    return call


def _stop_stream(call_id: uuid.UUID, stream: StreamKind, user: User) -> Call:
    message = f"{user_name(user)} stopped {_lower(stream)}"
    with transaction.atomic():
        call = locked_call(call_id)
        if not call.is_live:
            raise WrongState("The call has ended.")
        previous = stream_state.state_of(call, stream)
        transition = stream_state.next_state(previous, stream_state.Event.STAFF_STOP, stream_state.facts(call))
        if transition.refused:
            raise WrongState(f"{stream.label} is {transition.refused}.")
        finish_recovery_jobs(call, f"Stopped by {user_name(user)}.", stream_job_kind(stream))
        record_event(call, f"Callscribe.{stream.event_name}StopRequested", message)
        if transition.state.status == Status.INACTIVE:  # it had failed: nothing is streaming to stop
            _change_stream(call, stream, stream_state.Event.STAFF_STOP)
            return call
        require_connected(call)
        _change_stream(call, stream, stream_state.Event.STAFF_STOP)
    try:
        if stream is MEDIA:
            acs.stop_media_streaming(call.call_connection_id or "")
        else:
            acs.stop_transcription(call.call_connection_id or "")
    except AcsError as error:
        _undo(call_id, stream, previous, Status.STOPPING, error)
        raise
    with transaction.atomic():
        stopped_by = f"stopped by {user_name(user)}."
        stream_state.apply(locked_call(call_id), stream, stream_state.Event.STOP_ACCEPTED, detail=stopped_by)
    return call


def update_transcription_locale(*, call_id: uuid.UUID, locale: str, user: User = None) -> Call:
    locale = locale.strip()
    if not LOCALE_WITH_REGION.fullmatch(locale):
        raise InvalidRequest(f"{locale!r} is not a locale with a region, such as en-US.")
    with transaction.atomic():
        call = locked_call(call_id)
        require_connected(call)
        if call.transcription_status != Status.ACTIVE:
            raise WrongState("Transcription is not active.")
    try:
        acs.update_transcription(call.call_connection_id or "", locale=locale)
    except AcsError as error:
        record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        raise
    with transaction.atomic():
        call = locked_call(call_id)
        call.locale = locale
        live_events.save_with_sequence(call, ["locale"], "transcription")
        record_event(call, "Callscribe.TranscriptionLocaleChanged", f"{user_name(user)} switched to {locale}")
    return call


def stream_job_kind(stream: StreamKind) -> str:
    return RecoveryJob.Kind.MEDIA_STREAMING if stream is MEDIA else RecoveryJob.Kind.TRANSCRIPTION


def _lower(stream: StreamKind) -> str:
    return stream.label.lower()


def require_connected(call: Call) -> None:
    if not call.is_live:
        raise WrongState("The call has ended.")
    if call.state != Call.State.CONNECTED or not call.call_connection_id:
        raise WrongState("The call is not connected yet.")


def _change_stream(call: Call, stream: StreamKind, event: stream_state.Event) -> None:
    """Apply a staff request to a locked call, or raise WrongState when its status does not allow it."""
    transition, _ = stream_state.apply(call, stream, event)
    if transition.refused:
        raise WrongState(f"{stream.label} is {transition.refused}.")
    live_events.save_with_sequence(call, [stream.status_field, stream.wanted_field], stream.change)


def _undo(
    call_id: uuid.UUID, stream: StreamKind, previous: stream_state.StreamState, tried: str, error: AcsError
) -> None:
    """Put the status back after ACS refused, unless a callback has changed it meanwhile."""
    with transaction.atomic():
        call = locked_call(call_id)
        record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        now = stream_state.state_of(call, stream)
        if now.status == tried:
            stream_state.set_state(call, stream, stream_state.after_refusal(now, tried, previous))
            live_events.save_with_sequence(call, [stream.status_field, stream.wanted_field], stream.change)


# --- hanging up ------------------------------------------------------------------------------------------


def hang_up(*, call_id: uuid.UUID, user: User = None) -> Call:
    """End the call for everyone. ACS confirms with CallDisconnected; a 404 means it already ended."""
    with transaction.atomic():
        call = locked_call(call_id)
        if not call.is_live:
            raise WrongState("The call has already ended.")
        if not call.call_connection_id:
            raise WrongState("The call is not connected yet.")
        previous = (call.state, call.media_streaming_wanted, call.transcription_wanted)
        call.state = Call.State.DISCONNECTING
        # Streams stop with the call: that is not something to recover from.
        call.media_streaming_wanted = call.transcription_wanted = False
        live_events.save_with_sequence(call, ["state", "media_streaming_wanted", "transcription_wanted"], "state")
        finish_recovery_jobs(call, f"Hung up by {user_name(user)}.")
        record_event(call, "Callscribe.HangUpRequested", f"{user_name(user)} hung up")
    try:
        acs.hang_up(call.call_connection_id)
    except AcsError as error:
        _hang_up_failed(call_id, previous, error)
        if not error.call_is_gone:
            raise
    return call


def _hang_up_failed(call_id: uuid.UUID, previous: tuple[str, bool, bool], error: AcsError) -> None:
    with transaction.atomic():
        call = locked_call(call_id)
        if error.call_is_gone:  # ACS forgets calls once they end: the CallDisconnected was lost
            record_event(call, "Callscribe.CallGone", error.message)
            if call.is_live:
                end_call(call, state=Call.State.DISCONNECTED, reason="ACS no longer knows the call.")
            return
        record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        if call.state == Call.State.DISCONNECTING:
            call.state, call.media_streaming_wanted, call.transcription_wanted = previous
            live_events.save_with_sequence(call, ["state", "media_streaming_wanted", "transcription_wanted"], "state")
