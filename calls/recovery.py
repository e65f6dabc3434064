"""Recovery: restart media streaming or transcription that stopped while staff still want it, and
close calls whose CallDisconnected never arrived.

- A MediaStreamingFailed/TranscriptionFailed, or a Stopped nobody asked for, schedules a restart
  (calls/webhooks.py). So does a media socket that dropped and is not back within SOCKET_GRACE: ACS
  says nothing about that, so `sweep()` looks for such drops.
- Restarts back off: 1 s before the first try, then doubling to at most 30 s, 5 tries at most.
- A live call that ACS has said nothing about for CALL_CHECK_AFTER seconds is checked with
  get_call_properties and closed when ACS no longer knows it (404) or says it is disconnected.
- A pause for sensitive data (calls/pause.py) that staff have not ended after SENSITIVE_PAUSE_MAX_SECONDS
  is ended here, and transcription restarted like any other stream. The job is a row, so the pause ends
  on time even when the process that paused has gone.

Jobs are RecoveryJob rows. A worker claims the due jobs of one call with SELECT ... FOR UPDATE SKIP
LOCKED and runs them inside that transaction, so while one worker holds a call's jobs every other
worker skips them, and a worker that dies releases them at once. Everyone else who touches jobs
(webhooks, staff actions) skips locked rows too, so nobody ever waits for a worker's REST call.

Workers: `python manage.py run_recovery`, and a daemon thread in each daphne process
(`start_worker_thread`, called from config/asgi.py when RECOVERY_WORKER is on).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from calls import acs, control, live_events, stream_state
from calls.acs import AcsError
from calls.models import Call, Gap, MediaStream, RecoveryJob
from calls.stream_state import MEDIA, TRANSCRIPTION, StreamKind

logger = logging.getLogger(__name__)

Status = Call.StreamStatus
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
MAX_ATTEMPTS = 5
SOCKET_GRACE = timedelta(seconds=10)  # a dropped media socket not back within this counts as stopped
NOT_CONNECTED_YET_DELAY = timedelta(seconds=2)


def backoff(attempts: int) -> timedelta:
    """The wait before the next try, after `attempts` tries: 1 s, 2 s, 4 s ... at most 30 s."""
    return timedelta(seconds=min(MAX_DELAY, FIRST_DELAY * 2**attempts))


def stream_for(job_kind: str) -> StreamKind:
    return MEDIA if job_kind == RecoveryJob.Kind.MEDIA_STREAMING else TRANSCRIPTION


# --- scheduling ------------------------------------------------------------------------------------------


def schedule_restart(
    call: Call, stream: StreamKind, reason: str, *, delay: timedelta | None = None
) -> RecoveryJob | None:
    """Schedule a restart for a (locked) call, unless one is already waiting or running; after the first
    backoff unless `delay` says otherwise."""
    delay = backoff(0) if delay is None else delay
    kind = control.stream_job_kind(stream)
    if RecoveryJob.objects.filter(call=call, kind=kind, finished_at__isnull=True).exists():
        return None
    control.record_event(call, "Callscribe.RecoveryScheduled", f"{reason}; restarting in {delay.seconds} s")
    return RecoveryJob.objects.create(call=call, kind=kind, reason=reason, due_at=timezone.now() + delay)


def schedule_pause_limit(call: Call) -> RecoveryJob:
    """End a (locked) call's pause for sensitive data after SENSITIVE_PAUSE_MAX_SECONDS, unless staff
    resume it first (which finishes this job)."""
    limit = settings.SENSITIVE_PAUSE_MAX_SECONDS
    return RecoveryJob.objects.create(
        call=call,
        kind=RecoveryJob.Kind.PAUSE_LIMIT,
        reason=f"A pause for sensitive data ends after {limit} s",
        due_at=timezone.now() + timedelta(seconds=limit),
    )


def schedule_call_check(call: Call, reason: str) -> RecoveryJob | None:
    if RecoveryJob.objects.filter(call=call, kind=RecoveryJob.Kind.CALL_CHECK, finished_at__isnull=True).exists():
        return None
    return RecoveryJob.objects.create(call=call, kind=RecoveryJob.Kind.CALL_CHECK, reason=reason, due_at=timezone.now())


def sweep(now: datetime | None = None) -> int:
    """Schedule what ACS will not tell us about: sockets that dropped and stayed down, and calls gone quiet."""
    now = now or timezone.now()
    return _sweep_dropped_sockets(now) + _sweep_quiet_calls(now)


# The sweeps run every pass, mostly finding nothing: each query reads one table, so an idle pass never
# holds a lock on one table while waiting for another (a test's TRUNCATE of every table could deadlock).


def _sweep_dropped_sockets(now: datetime) -> int:
    drops = Gap.objects.filter(
        reason=Gap.Reason.SOCKET_DROP, ended_at__isnull=True, started_at__lte=now - SOCKET_GRACE, stream__isnull=False
    ).values_list("call_id", "stream_id")
    drops = set(drops)
    if not drops:
        return 0
    kinds = dict(MediaStream.objects.filter(pk__in={stream_id for _, stream_id in drops}).values_list("pk", "kind"))
    scheduled = 0
    for call_id, kind in {(call_id, kinds.get(stream_id)) for call_id, stream_id in drops}:
        stream = MEDIA if kind == MediaStream.Kind.AUDIO else TRANSCRIPTION
        with transaction.atomic():
            scheduled += _stream_lost(control.locked_call(call_id), stream)
    return scheduled


def _stream_lost(call: Call, stream: StreamKind) -> bool:
    transition, _ = stream_state.apply(call, stream, stream_state.Event.RECOVERY_LOST)
    if not transition.recover:
        return False
    live_events.save_with_sequence(call, [stream.status_field], stream.change)
    message = f"{stream.label} socket dropped and was not back within {SOCKET_GRACE.seconds} s"
    control.record_event(call, "Callscribe.StreamLost", message)
    return schedule_restart(call, stream, message) is not None


def _sweep_quiet_calls(now: datetime) -> int:
    quiet_since = now - timedelta(seconds=settings.CALL_CHECK_AFTER)
    quiet = set(
        Call.objects.live()
        .annotate(heard_at=Coalesce(F("last_event_at"), F("created_at")))
        .filter(heard_at__lte=quiet_since)
        .values_list("pk", flat=True)[:100]
    )
    if not quiet:
        return 0
    checking = RecoveryJob.objects.filter(kind=RecoveryJob.Kind.CALL_CHECK, finished_at__isnull=True)
    quiet -= set(checking.filter(call_id__in=quiet).values_list("call_id", flat=True))
    scheduled = 0
    for call_id in quiet:
        with transaction.atomic():
            call = control.locked_call(call_id)
            if call.is_live:
                scheduled += schedule_call_check(call, "No news from ACS for a while") is not None
    return scheduled


# --- claiming and running --------------------------------------------------------------------------------


def claim_jobs(now: datetime | None = None) -> list[RecoveryJob]:
    """Lock the due jobs of one call that no other worker holds. Call inside transaction.atomic():
    the jobs stay this worker's until the transaction ends."""
    now = now or timezone.now()
    due = RecoveryJob.objects.select_for_update(skip_locked=True).filter(finished_at__isnull=True, due_at__lte=now)
    first = due.order_by("due_at", "id").first()
    if first is None:
        return []
    return [first, *due.filter(call_id=first.call_id).exclude(pk=first.pk).order_by("due_at", "id")]


def run_due_jobs(limit: int = 20) -> int:
    done = 0
    while done < limit:
        with transaction.atomic():
            jobs = claim_jobs()
            for job in jobs:
                run_job(job)
        if not jobs:
            break
        done += len(jobs)
    return done


def run_job(job: RecoveryJob) -> None:
    """Run one claimed job; it ends finished, or due again later."""
    call = Call.objects.get(pk=job.call_id)
    if not call.is_live:
        _finish(job, "The call ended.")
    elif job.kind == RecoveryJob.Kind.CALL_CHECK:
        _check_call(job, call)
    elif job.kind == RecoveryJob.Kind.PAUSE_LIMIT:
        _end_forgotten_pause(job, call)
    else:
        _restart_stream(job, call, stream_for(job.kind))


def _restart_stream(job: RecoveryJob, call: Call, stream: StreamKind) -> None:
    if not getattr(call, stream.wanted_field):
        return _finish(job, "Staff stopped it.")
    if getattr(call, stream.status_field) == Status.PAUSED:
        return _finish(job, "Paused for sensitive data.")
    if getattr(call, stream.status_field) == Status.ACTIVE:
        return _finish(job, f"{stream.label} is running again.")
    if call.state != Call.State.CONNECTED:  # callbacks can overtake CallConnected: wait for it
        return _retry(job, NOT_CONNECTED_YET_DELAY)
    job.attempts += 1
    try:
        _request_restart(call, stream)
    except AcsError as error:
        return _restart_failed(job, call, stream, error)
    with transaction.atomic():
        call = control.locked_call(call.pk)
        # STARTING is set while this worker still holds the job, so a quick Started callback (which
        # waits for the call's row lock) can only come after it and make it active.
        _, changed = stream_state.apply(call, stream, stream_state.Event.RECOVERY_RESTARTING)
        if changed:
            live_events.save_with_sequence(call, changed, stream.change)
        control.record_event(call, "Callscribe.RecoveryRestartRequested", f"{stream.label}: try {job.attempts}")
    if getattr(call, stream.status_field) == Status.PAUSED:
        return _stop_during_pause(job, call)
    # Not finished yet: the Started callback finishes it; if none comes, this runs again.
    _retry(job, backoff(job.attempts))


def _request_restart(call: Call, stream: StreamKind) -> None:
    """Ask ACS to start the stream again. When ACS still counts the subscription as active (its socket
    died quietly), stop it first, since ACS refuses to start an active subscription."""
    info = acs.get_call_properties(call.call_connection_id or "")
    state = info.media_streaming_state if stream is MEDIA else info.transcription_state
    if state == "active":
        if stream is MEDIA:
            acs.stop_media_streaming(call.call_connection_id or "")
        else:
            acs.stop_transcription(call.call_connection_id or "")
    control.request_stream_start(call, stream)


def _stop_during_pause(job: RecoveryJob, call: Call) -> None:
    """Staff paused for sensitive data while this worker was asking ACS to restart transcription: the
    pause found nothing running to stop, so stop what this worker started."""
    try:
        acs.stop_transcription(call.call_connection_id or "")
    except AcsError as error:
        control.record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
    _finish(job, "Paused for sensitive data.")


def _end_forgotten_pause(job: RecoveryJob, call: Call) -> None:
    limit = round((job.due_at - job.created_at).total_seconds())  # as the process that paused had it
    with transaction.atomic():
        call = control.locked_call(call.pk)
        # Staff may have resumed and paused again since this job was made: that pause has its own job.
        if not stream_state.open_pause(call).filter(started_at__lte=job.created_at).exists():
            return _finish(job, "The pause had ended.")
        detail = f"resumed by itself after {limit} s"
        transition, changed = stream_state.apply(call, TRANSCRIPTION, stream_state.Event.RESUME, detail=detail)
        if transition.refused:
            return _finish(job, f"Transcription is {transition.refused}.")
        live_events.save_with_sequence(call, changed, TRANSCRIPTION.change)
        control.record_event(call, "Callscribe.SensitivePauseEnded", f"Transcription and audio capture {detail}")
        if transition.state.status == Status.STARTING:
            schedule_restart(call, TRANSCRIPTION, "Resumed after a pause", delay=timedelta(0))
    _finish(job, f"Resumed after {limit} s.")


def _restart_failed(job: RecoveryJob, call: Call, stream: StreamKind, error: AcsError) -> None:
    with transaction.atomic():
        call = control.locked_call(call.pk)
        control.record_event(call, "Callscribe.AcsError", error.message, status_code=error.status_code)
        if error.call_is_gone:
            _close_gone_call(call, error.message)
            return _finish(job, "ACS no longer knows the call.")
        if job.attempts < MAX_ATTEMPTS:
            return _retry(job, backoff(job.attempts))
        stream_state.apply(call, stream, stream_state.Event.RECOVERY_GAVE_UP)
        live_events.save_with_sequence(call, [stream.status_field], stream.change)
        message = f"{stream.label} could not be restarted after {job.attempts} tries: {error.message}"
        control.record_event(call, "Callscribe.RecoveryGaveUp", message)
        _finish(job, message)


def _check_call(job: RecoveryJob, call: Call) -> None:
    if not call.call_connection_id:
        with transaction.atomic():
            call = control.locked_call(call.pk)
            if call.is_live:
                control.end_call(call, state=Call.State.FAILED, reason="ACS never confirmed the call.")
        return _finish(job, "ACS never confirmed the call.")
    job.attempts += 1
    try:
        info = acs.get_call_properties(call.call_connection_id)
    except AcsError as error:
        if error.call_is_gone:
            with transaction.atomic():
                _close_gone_call(control.locked_call(call.pk), error.message)
            return _finish(job, "ACS no longer knows the call.")
        if job.attempts < MAX_ATTEMPTS:
            return _retry(job, backoff(job.attempts))
        return _finish(job, f"Could not check the call: {error.message}")
    if info.state == Call.State.DISCONNECTED:
        with transaction.atomic():
            _close_gone_call(control.locked_call(call.pk), "ACS says the call is disconnected.")
        return _finish(job, "ACS says the call is disconnected.")
    Call.objects.filter(pk=call.pk).update(last_event_at=timezone.now())
    _finish(job, f"ACS says the call is {info.state or 'still there'}.")


def _close_gone_call(call: Call, message: str) -> None:
    control.record_event(call, "Callscribe.CallGone", message)
    if call.is_live:
        control.end_call(call, state=Call.State.DISCONNECTED, reason="The call ended; ACS's CallDisconnected was lost.")


def _finish(job: RecoveryJob, outcome: str) -> None:
    job.finished_at = timezone.now()
    job.outcome = outcome
    job.save(update_fields=["finished_at", "outcome", "attempts"])


def _retry(job: RecoveryJob, delay: timedelta) -> None:
    job.due_at = timezone.now() + delay
    job.save(update_fields=["due_at", "attempts"])


# --- workers ---------------------------------------------------------------------------------------------


def run_once() -> int:
    """One pass: schedule what needs scheduling, then run what is due."""
    sweep()
    return run_due_jobs()


def run_forever(stop: threading.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            run_once()
        except Exception:  # a database hiccup must not end the worker
            logger.exception("Recovery pass failed")
        finally:
            close_old_connections()
        stop.wait(interval)


_worker_stop = threading.Event()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def start_worker_thread() -> threading.Thread | None:
    """Run recovery in a daemon thread of this server process (once), when RECOVERY_WORKER is on."""
    global _worker
    if not settings.RECOVERY_WORKER:
        return None
    with _worker_lock:
        if _worker is None:
            _worker = threading.Thread(
                target=run_forever,
                args=(_worker_stop, settings.RECOVERY_POLL_INTERVAL),
                name="callscribe-recovery",
                daemon=True,
            )
            _worker.start()
            logger.info("Recovery worker thread started (every %.1f s)", settings.RECOVERY_POLL_INTERVAL)
    return _worker
