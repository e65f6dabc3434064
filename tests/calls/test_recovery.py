"""Recovery: streams restarted through the SDK after ACS (the emulator) drops or fails them, calls
closed when their CallDisconnected was lost, and jobs claimed by exactly one worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from azure.communication.callautomation import CallAutomationClient, PhoneNumberIdentifier
from azure.core.credentials import AzureKeyCredential
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import control, recovery
from calls.control import MEDIA
from calls.models import Call, CallEvent, Gap, MediaStream, RecoveryJob
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import rest_requests, ring, wait_for
from tests.calls.conftest import new_call
from tests.servers import AppServer

Status = Call.StreamStatus
LATER = timedelta(hours=1)  # jobs due this far ahead are invisible to the app server's own worker


def test_restarts_back_off_from_1_s_doubling_to_30_s() -> None:
    delays = [recovery.backoff(attempts).total_seconds() for attempts in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def schedule(call: Call, stream: control.StreamKind = MEDIA) -> RecoveryJob:
    with transaction.atomic():
        job = recovery.schedule_restart(control.locked_call(call.pk), stream, "test")
    assert job is not None
    return job


def run_claimed(now: timezone.datetime) -> list[RecoveryJob]:
    with transaction.atomic():
        jobs = recovery.claim_jobs(now)
        for job in jobs:
            recovery.run_job(job)
    return jobs


def emulator_call_without_media(emulator: RunningEmulator) -> str:
    """A connected call on the emulator that was set up without media streaming, so ACS refuses to start it."""
    client = CallAutomationClient(emulator.base_url, AzureKeyCredential(emulator.access_key))
    properties = client.create_call(PhoneNumberIdentifier("+14255550177"), "http://127.0.0.1:9/callbacks")
    wait_for(lambda: emulator.call(properties.call_connection_id)["state"] == "connected", what="the emulator call")
    return properties.call_connection_id


@pytest.mark.django_db
def test_a_refused_restart_backs_off_and_gives_up_after_5_tries(
    acs_settings: SettingsWrapper, emulator: RunningEmulator
) -> None:
    connection_id = emulator_call_without_media(emulator)
    call = new_call(state=Call.State.CONNECTED, call_connection_id=connection_id, media_streaming_status=Status.FAILED)
    job = schedule(call)
    assert job.due_at - timezone.now() <= timedelta(seconds=1)

    for attempts in range(1, 5):
        started = timezone.now()
        (claimed,) = run_claimed(started + LATER)
        claimed.refresh_from_db()
        assert claimed.attempts == attempts
        assert claimed.due_at - started >= recovery.backoff(attempts)  # 2, 4, 8, 16 s
        assert claimed.due_at - timezone.now() <= recovery.backoff(attempts)
    run_claimed(timezone.now() + LATER)
    job.refresh_from_db()
    assert (job.attempts, job.finished_at is not None) == (5, True)
    assert "could not be restarted after 5 tries" in job.outcome
    assert Call.objects.get(pk=call.pk).media_streaming_status == Status.FAILED
    assert CallEvent.objects.filter(call=call, type="Callscribe.AcsError").count() == 5
    assert CallEvent.objects.filter(call=call, type="Callscribe.RecoveryGaveUp").exists()
    starts = [path for method, path in rest_requests(emulator, connection_id) if path.endswith(":startMediaStreaming")]
    assert len(starts) == 5
    assert not run_claimed(timezone.now() + LATER)
    control.hang_up(call_id=call.id)


@pytest.mark.django_db
def test_a_restart_staff_no_longer_want_finishes_without_asking_acs(db: None) -> None:
    call = new_call(state=Call.State.CONNECTED, call_connection_id="c-1", media_streaming_status=Status.FAILED)
    job = schedule(call)
    Call.objects.filter(pk=call.pk).update(media_streaming_wanted=False)

    run_claimed(timezone.now() + LATER)

    job.refresh_from_db()
    assert (job.attempts, job.outcome) == (0, "Staff stopped it.")


@pytest.mark.django_db
def test_a_socket_dropped_for_more_than_10_s_counts_as_stopped(db: None) -> None:
    call = new_call(state=Call.State.CONNECTED, call_connection_id="c-2", media_streaming_status=Status.ACTIVE)
    stream = MediaStream.objects.create(call=call, kind=MediaStream.Kind.AUDIO, subscription_id="sub-1")
    now = timezone.now()
    Gap.objects.create(call=call, stream=stream, reason=Gap.Reason.SOCKET_DROP, started_at=now - timedelta(seconds=9))

    assert recovery.sweep(now) == 0

    assert recovery.sweep(now + timedelta(seconds=2)) == 1
    call.refresh_from_db()
    assert call.media_streaming_status == Status.FAILED
    assert RecoveryJob.objects.get(call=call).kind == RecoveryJob.Kind.MEDIA_STREAMING
    assert "not back within 10 s" in CallEvent.objects.get(call=call, type="Callscribe.StreamLost").result_message
    assert recovery.sweep(now + timedelta(seconds=3)) == 0  # scheduled once


@pytest.mark.django_db
def test_a_call_whose_call_disconnected_was_lost_is_closed(
    acs_settings: SettingsWrapper, emulator: RunningEmulator
) -> None:
    acs_settings.CALL_CHECK_AFTER = 60
    quiet = timezone.now() - timedelta(minutes=5)
    gone = new_call(state=Call.State.CONNECTED, call_connection_id="ended-long-ago", last_event_at=quiet)
    still_there = new_call(
        state=Call.State.CONNECTED, call_connection_id=emulator_call_without_media(emulator), last_event_at=quiet
    )
    recent = new_call(state=Call.State.CONNECTED, call_connection_id="recent", last_event_at=timezone.now())

    assert recovery.sweep() == 2
    recovery.run_due_jobs()

    gone.refresh_from_db()
    assert gone.state == Call.State.DISCONNECTED and gone.ended_at is not None
    assert "CallDisconnected was lost" in gone.end_reason
    assert "Call not found" in CallEvent.objects.get(call=gone, type="Callscribe.CallGone").result_message
    still_there.refresh_from_db()
    assert still_there.state == Call.State.CONNECTED and still_there.last_event_at > quiet
    assert not RecoveryJob.objects.filter(call=recent).exists()
    assert not RecoveryJob.objects.filter(finished_at__isnull=True).exists()
    control.hang_up(call_id=still_there.id)


@pytest.mark.django_db
def test_run_recovery_once_runs_due_jobs(db: None) -> None:
    call = new_call(state=Call.State.DISCONNECTED, call_connection_id="c-3")
    job = RecoveryJob.objects.create(call=call, kind=RecoveryJob.Kind.MEDIA_STREAMING, due_at=timezone.now())

    call_command("run_recovery", "--once")

    job.refresh_from_db()
    assert job.outcome == "The call ended."


# --- claiming: several workers, each job run by exactly one -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_holding_a_calls_jobs_makes_the_other_skip_them() -> None:
    due = timezone.now() + LATER
    first, second = new_call(), new_call()
    first_jobs = {
        RecoveryJob.objects.create(call=first, kind=kind, due_at=due).pk
        for kind in (RecoveryJob.Kind.MEDIA_STREAMING, RecoveryJob.Kind.TRANSCRIPTION)
    }
    second_job = RecoveryJob.objects.create(
        call=second, kind=RecoveryJob.Kind.MEDIA_STREAMING, due_at=due + timedelta(seconds=1)
    )
    holding, release = threading.Event(), threading.Event()
    claimed: dict[str, set[int]] = {}

    def worker_one() -> None:
        try:
            with transaction.atomic():
                claimed["one"] = {job.pk for job in recovery.claim_jobs(due + LATER)}
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker_one)
    thread.start()
    assert holding.wait(10)
    with transaction.atomic():
        claimed["two"] = {job.pk for job in recovery.claim_jobs(due + LATER)}
    release.set()
    thread.join(10)

    assert claimed == {"one": first_jobs, "two": {second_job.pk}}


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_run_each_job_exactly_once() -> None:
    due = timezone.now() + LATER
    calls = [new_call() for _ in range(12)]
    jobs = [
        RecoveryJob.objects.create(call=call, kind=kind, due_at=due)
        for call in calls
        for kind in (RecoveryJob.Kind.MEDIA_STREAMING, RecoveryJob.Kind.TRANSCRIPTION)
    ]
    runs: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def worker() -> None:
        try:
            start.wait(10)
            while True:
                with transaction.atomic():
                    claimed = recovery.claim_jobs(due + LATER)
                    for job in claimed:
                        RecoveryJob.objects.filter(pk=job.pk).update(finished_at=timezone.now(), outcome="ran")
                with lock:
                    runs.extend(job.pk for job in claimed)
                if not claimed:
                    return
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(runs) == sorted(job.pk for job in jobs)
    assert not RecoveryJob.objects.filter(finished_at__isnull=True).exists()


# --- end to end: the emulator fails or drops a stream, the app server's worker restarts it -------------


def _answered_call(emulator: RunningEmulator, app: AppServer, end_calls: Callable[[Call], Call]) -> Call:
    rang = ring(emulator, app)
    call = wait_for(lambda: Call.objects.filter(server_call_id=rang["server_call_id"]).first(), what="the call")
    end_calls(call)
    wait_for(
        lambda: Call.objects.filter(pk=call.pk, media_streaming_status=Status.ACTIVE, state=Call.State.CONNECTED),
        what="streaming to start",
    )
    return Call.objects.get(pk=call.pk)


def _restart_requests(emulator: RunningEmulator, call: Call) -> list[str]:
    return [path for _, path in rest_requests(emulator, call.call_connection_id) if path.endswith("MediaStreaming")]


@pytest.mark.django_db(transaction=True)
def test_a_dropped_media_socket_that_acs_gives_up_on_is_restarted_and_the_gap_recorded(
    acs_app: AppServer, emulator: RunningEmulator, end_calls: Callable[[Call], Call]
) -> None:
    call = _answered_call(emulator, acs_app, end_calls)

    emulator.fault(call.call_connection_id, "drop_socket", which="media")  # no reconnect: ACS fails the stream

    wait_for(lambda: Gap.objects.filter(call=call).exists(), what="a gap")
    wait_for(lambda: _restart_requests(emulator, call), what="a restart request")
    wait_for(lambda: Call.objects.filter(pk=call.pk, media_streaming_status=Status.ACTIVE), what="streaming again")
    wait_for(lambda: not Gap.objects.filter(call=call, ended_at__isnull=True).exists(), what="the gap to close")

    # The socket drop, or ACS's failure when its callback overtakes the socket's close (the stream is
    # failed by then, so the close opens no second gap for the same outage), or both.
    reasons = set(Gap.objects.filter(call=call).values_list("reason", flat=True))
    assert reasons and reasons <= {Gap.Reason.SOCKET_DROP, Gap.Reason.ACS_FAILURE}
    assert _restart_requests(emulator, call)[-1].endswith(":startMediaStreaming")  # once, unless ACS is slow
    assert MediaStream.objects.get(call=call, kind=MediaStream.Kind.AUDIO).connection_count >= 2  # same subscription
    job = wait_for(lambda: RecoveryJob.objects.filter(call=call, finished_at__isnull=False).first(), what="the job")
    assert job.kind == RecoveryJob.Kind.MEDIA_STREAMING and job.attempts >= 1
    types = set(CallEvent.objects.filter(call=call).values_list("type", flat=True))
    assert {"Microsoft.Communication.MediaStreamingFailed", "Callscribe.RecoveryScheduled"} <= types
    assert "Callscribe.RecoveryRestartRequested" in types


@pytest.mark.django_db(transaction=True)
def test_media_streaming_failed_is_recovered_after_a_backoff(
    acs_app: AppServer, emulator: RunningEmulator, end_calls: Callable[[Call], Call]
) -> None:
    call = _answered_call(emulator, acs_app, end_calls)

    emulator.fault(call.call_connection_id, "fail_streaming")
    failed = wait_for(
        lambda: CallEvent.objects.filter(call=call, type="Microsoft.Communication.MediaStreamingFailed").first(),
        what="MediaStreamingFailed",
    )
    restart = wait_for(
        lambda: CallEvent.objects.filter(call=call, type="Callscribe.RecoveryRestartRequested").first(),
        what="the restart",
    )
    wait_for(lambda: Call.objects.filter(pk=call.pk, media_streaming_status=Status.ACTIVE), what="streaming again")

    assert restart.time - failed.received_at >= timedelta(seconds=0.9)  # the first backoff
    assert _restart_requests(emulator, call)[-1].endswith(":startMediaStreaming")  # once, unless ACS is slow
    assert Gap.objects.filter(call=call).exists()
    wait_for(lambda: not Gap.objects.filter(call=call, ended_at__isnull=True).exists(), what="the gap to close")
