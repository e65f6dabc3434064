"""Pause for sensitive data: while a caller reads out a card number, staff (or an agent desktop or an IVR,
through the JSON API) pause the call's transcription and audio capture, then resume them.

- Pausing marks transcription `paused` and opens a gap of its own kind, "Transcription and audio capture
  paused for sensitive data by alice" (calls/stream_state.py has the rules), then asks ACS to stop
  transcribing if it was. ACS keeps streaming audio, but the media socket writes silence in place of
  whatever arrives while the pause's gap is open (`capture_pauses`, read when streaming/audio.py writes),
  so captured files stay in step with the call.
- Resuming closes the gap and asks ACS to transcribe again.
- A pause nobody resumes ends after SENSITIVE_PAUSE_MAX_SECONDS: pausing schedules a recovery job
  (calls/recovery.py), a row any process's worker runs, so it ends on time even after a restart.
- ACS starts a new transcription's offsets at zero. `offset_base_ticks` is how long after the call's
  first transcription connection the latest resume came; the media socket adds it to what it is sent,
  so lines after a pause carry on along the call's timeline instead of starting again at 0:00.

Each pause and resume goes in the call's history; the views add who asked to the access log.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.db.models import Min, Q

from calls import acs, control, live_events, recovery, stream_state
from calls.acs import AcsError
from calls.control import User, WrongState
from calls.models import TICKS_PER_MILLISECOND, Call, Gap, MediaStream, RecoveryJob
from calls.stream_state import TRANSCRIPTION, Event, StreamState

Status = Call.StreamStatus
PAUSED_EVENT = "Callscribe.SensitivePauseStarted"
RESUMED_EVENT = "Callscribe.SensitivePauseEnded"


def pause(*, call_id: uuid.UUID, user: User = None) -> Call:
    """Pause transcription and audio capture. WrongState when the call is not connected or is paused."""
    by = control.user_name(user)
    with transaction.atomic():
        call = control.locked_call(call_id)
        control.require_connected(call)
        before = stream_state.state_of(call, TRANSCRIPTION)
        _apply(call, Event.STAFF_PAUSE, f"Transcription and audio capture paused for sensitive data by {by}")
        # A restart already on its way would transcribe the card number.
        control.finish_recovery_jobs(call, f"Paused for sensitive data by {by}.", RecoveryJob.Kind.TRANSCRIPTION)
        recovery.schedule_pause_limit(call)
        control.record_event(call, PAUSED_EVENT, f"{by} paused transcription and audio capture", user=by)
    if before.status in (Status.ACTIVE, Status.STARTING):
        try:
            acs.stop_transcription(call.call_connection_id or "")
        except AcsError as error:
            _pause_refused(call_id, before, error)
            raise
    return call


def resume(*, call_id: uuid.UUID, user: User = None) -> Call:
    """End the pause: capture at once, transcription as soon as ACS has started it again."""
    by = control.user_name(user)
    with transaction.atomic():
        call = control.locked_call(call_id)
        if not call.is_live:
            raise WrongState("The call has ended.")
        restart = _apply(call, Event.RESUME, f"resumed by {by}").state.status == Status.STARTING
        control.finish_recovery_jobs(call, f"Resumed by {by}.", RecoveryJob.Kind.PAUSE_LIMIT)
        control.record_event(call, RESUMED_EVENT, f"{by} resumed transcription and audio capture", user=by)
    if restart:
        try:
            control.request_stream_start(call, TRANSCRIPTION)
        except AcsError as error:
            _restart_refused(call_id, error)
            message = f"The pause has ended, but transcription did not start again; it is retried. {error.message}"
            raise AcsError(message, status_code=error.status_code, error_code=error.error_code) from None
    return call


def _apply(call: Call, event: Event, detail: str) -> stream_state.Transition:
    transition, changed = stream_state.apply(call, TRANSCRIPTION, event, detail=detail)
    if transition.refused:
        raise WrongState(f"Transcription is {transition.refused}.")
    live_events.save_with_sequence(call, changed, TRANSCRIPTION.change)
    return transition


def _pause_refused(call_id: uuid.UUID, before: StreamState, error: AcsError) -> None:
    """ACS would not stop transcribing: nothing is paused, as staff are told."""
    with transaction.atomic():
        call = control.locked_call(call_id)
        control.record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        changed = stream_state.pause_refused(call, before)
        if changed:
            live_events.save_with_sequence(call, changed, TRANSCRIPTION.change)
            control.finish_recovery_jobs(call, "ACS did not stop transcription.", RecoveryJob.Kind.PAUSE_LIMIT)


def _restart_refused(call_id: uuid.UUID, error: AcsError) -> None:
    """The pause is over but ACS would not start transcribing: lost like any stream, so recovery retries."""
    with transaction.atomic():
        call = control.locked_call(call_id)
        control.record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        if call.transcription_status != Status.STARTING:  # a callback has said otherwise meanwhile
            return
        what = f"did not start again after the pause: {error.message}"
        transition, changed = stream_state.apply(call, TRANSCRIPTION, Event.ACS_FAILED, detail=what)
        live_events.save_with_sequence(call, changed, TRANSCRIPTION.change)
        if transition.recover:
            recovery.schedule_restart(call, TRANSCRIPTION, f"Transcription {what}")


# --- what the media socket asks ---------------------------------------------------------------------


def capture_pauses(*, call_id: uuid.UUID, since: datetime) -> list[tuple[datetime, datetime | None]]:
    """The call's pauses that were still going on at `since` or began after it: (start, end), the end
    None while the pause lasts. Audio that arrived within one is written as silence."""
    pauses = Gap.objects.filter(call_id=call_id, reason=Gap.Reason.SENSITIVE_PAUSE)
    pauses = pauses.filter(Q(ended_at__isnull=True) | Q(ended_at__gt=since)).order_by("started_at")
    return list(pauses.values_list("started_at", "ended_at"))


def offset_base_ticks(*, call_id: uuid.UUID) -> int:
    """What to add to the offsets of a transcription socket opening now (see the module docstring):
    0 unless a pause ended after the call's first transcription connection."""
    resumed_at = (
        Gap.objects.filter(call_id=call_id, reason=Gap.Reason.SENSITIVE_PAUSE, ended_at__isnull=False)
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )
    if resumed_at is None:
        return 0
    streams = MediaStream.objects.filter(call_id=call_id, kind=MediaStream.Kind.TRANSCRIPTION)
    first_connected = streams.aggregate(first=Min("connected_at"))["first"]
    if first_connected is None or resumed_at <= first_connected:
        return 0
    return round((resumed_at - first_connected).total_seconds() * 1000) * TICKS_PER_MILLISECOND
